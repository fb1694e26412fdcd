package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/bpf/ref"
	"github.com/ferry-fabric/ferry/initiator"
)

func TestWriteReadBackFlush(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "io")
	ctx := ctxT(t)

	for _, tc := range []struct {
		lba    uint64
		blocks uint32
		fua    bool
	}{{0, 1, false}, {100, 16, true}, {nsBlocks - 300, 300, false}} {
		src := buffer(t, c, int(tc.blocks)*blockSize)
		rand.Read(src.Bytes())
		if err := c.WriteBlocks(ctx, 1, tc.lba, tc.blocks, src, tc.fua); err != nil {
			t.Fatalf("write %d+%d: %v", tc.lba, tc.blocks, err)
		}
		dst := buffer(t, c, int(tc.blocks)*blockSize)
		if err := c.ReadBlocks(ctx, 1, tc.lba, tc.blocks, dst); err != nil {
			t.Fatalf("read %d+%d: %v", tc.lba, tc.blocks, err)
		}
		if !bytes.Equal(dst.Bytes(), src.Bytes()) {
			t.Fatalf("blocks %d+%d read back differ", tc.lba, tc.blocks)
		}
		copy(e.data[tc.lba*blockSize:], src.Bytes())
	}
	if err := c.Flush(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// The backing file holds what was acknowledged.
	disk, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, e.data) {
		t.Fatal("backing file differs from the acknowledged writes")
	}

	// An extension sees the new blocks.
	elf, _ := ext.ELF("aggregate")
	x, err := c.Load(ctx, "aggregate", elf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, LBA: 100, Blocks: 16, Args: []uint64{64, 8}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := ref.Aggregate(e.data[100*blockSize:116*blockSize], blockSize, 100, [8]uint64{64, 8}, 0)
	if got.Out != want {
		t.Fatalf("aggregate after write = %v, want %v", got.Out, want)
	}
}

// TestConcurrentClients runs many clients at once, each mixing extension
// runs, reads of shared blocks and writes to blocks of its own.
func TestConcurrentClients(t *testing.T) {
	e := startTarget(t, envOptions{slots: 4, workers: 2, depth: 16})
	const clients, rounds = 8, 12
	const ownBase = nsBlocks - clients*8 // each client owns 8 blocks here

	elf, _ := ext.ELF("count")
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := e.dial(t, fmt.Sprintf("tenant-%d", i%3))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- clientWork(c, e, elf, i, rounds, ownBase+uint64(i*8))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func clientWork(c *initiator.Client, e *env, elf []byte, id, rounds int, own uint64) error {
	ctx := context.Background()
	x, err := c.Load(ctx, "count", elf)
	if err != nil {
		return err
	}
	rd, err := c.NewBuffer(8 * blockSize)
	if err != nil {
		return err
	}
	defer rd.Close()
	wr, err := c.NewBuffer(8 * blockSize)
	if err != nil {
		return err
	}
	defer wr.Close()

	for r := range rounds {
		// Several requests in flight at once from this client.
		lba := uint64((id*97 + r*131) % (nsBlocks - 8*8 - 300))
		args := [8]uint64{64, 8, 2, uint64(r) << 59}
		var inner sync.WaitGroup
		var execErr, readErr error
		var out [4]uint64
		inner.Add(2)
		go func() {
			defer inner.Done()
			res, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, LBA: lba, Blocks: 300, Args: args[:]}, nil)
			if err == nil {
				out = res.Out
			}
			execErr = err
		}()
		go func() {
			defer inner.Done()
			readErr = c.ReadBlocks(ctx, 1, lba, 8, rd)
		}()
		rand.Read(wr.Bytes())
		if err := c.WriteBlocks(ctx, 1, own, 8, wr, false); err != nil {
			return fmt.Errorf("client %d: write: %w", id, err)
		}
		inner.Wait()
		if execErr != nil || readErr != nil {
			return fmt.Errorf("client %d: exec %v, read %v", id, execErr, readErr)
		}

		want, _, _ := ref.Count(e.data[lba*blockSize:(lba+300)*blockSize], blockSize, lba, args, 0)
		if out != want {
			return fmt.Errorf("client %d round %d: count = %v, want %v", id, r, out, want)
		}
		if !bytes.Equal(rd.Bytes(), e.data[lba*blockSize:(lba+8)*blockSize]) {
			return fmt.Errorf("client %d round %d: read blocks differ", id, r)
		}
		if err := c.ReadBlocks(ctx, 1, own, 8, rd); err != nil {
			return err
		}
		if !bytes.Equal(rd.Bytes(), wr.Bytes()) {
			return fmt.Errorf("client %d round %d: own blocks read back differ", id, r)
		}
	}
	return nil
}
