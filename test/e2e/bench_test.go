package e2e

import (
	"context"
	"testing"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/bpf/ref"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/initiator"
)

func benchTarget(b *testing.B) (*env, *initiator.Client, *initiator.Extension) {
	e := startTarget(b, envOptions{})
	c, err := initiator.Dial(context.Background(), e.addr, initiator.Options{Tenant: "bench",
		Conn: fabric.ConnOptions{BusyPoll: busyPoll()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	elf, _ := ext.ELF("count")
	x, err := c.Load(context.Background(), "count", elf)
	if err != nil {
		b.Fatal(err)
	}
	return e, c, x
}

// BenchmarkNullExec is the round trip of an exec over zero blocks: the
// fabric, the target's dispatch and one BPF_PROG_RUN, no storage.
func BenchmarkNullExec(b *testing.B) {
	_, c, x := benchTarget(b)
	ctx := context.Background()
	req := initiator.ExecRequest{NS: 1, Blocks: 0, Args: []uint64{64, 8, 2, 1}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Exec(ctx, x, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead4K is one 4 KiB block read at queue depth 1.
func BenchmarkRead4K(b *testing.B) {
	_, c, _ := benchTarget(b)
	ctx := context.Background()
	buf, err := c.NewBuffer(blockSize)
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	b.SetBytes(blockSize)
	i := uint64(0)
	for b.Loop() {
		if err := c.ReadBlocks(ctx, 1, i%nsBlocks, 1, buf); err != nil {
			b.Fatal(err)
		}
		i += 7
	}
}

// BenchmarkCount compares counting records over the whole namespace
// pushed down with reading every block and counting here. Both report
// MB/s of namespace processed.
func BenchmarkCount(b *testing.B) {
	e, c, x := benchTarget(b)
	ctx := context.Background()
	args := [8]uint64{64, 8, 2, 1 << 60}
	b.Run("pushdown", func(b *testing.B) {
		b.SetBytes(int64(len(e.data)))
		for b.Loop() {
			if _, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: nsBlocks, Args: args[:]}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read-all", func(b *testing.B) {
		maxIO, _ := c.Limits()
		per := uint32(min(maxIO, 1<<20) / blockSize)
		all, err := c.NewBuffer(len(e.data))
		if err != nil {
			b.Fatal(err)
		}
		defer all.Close()
		b.SetBytes(int64(len(e.data)))
		for b.Loop() {
			for lba := uint32(0); lba < nsBlocks; lba += per {
				view, _ := all.Slice(int(lba)*blockSize, int(per)*blockSize)
				if err := c.ReadBlocks(ctx, 1, uint64(lba), per, view); err != nil {
					b.Fatal(err)
				}
			}
			if _, _, err := ref.Count(all.Bytes(), blockSize, 0, args, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
