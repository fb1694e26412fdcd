package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/bpf/ref"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/initiator"
)

type execCase struct {
	name      string
	ext       string
	lba       uint64
	blocks    uint32
	args      [8]uint64
	resultCap int // 0: no result buffer
}

func execCases() []execCase {
	const half = 1 << 63
	grep1 := ref.GrepPattern([]byte{0x42})
	grep2 := ref.GrepPattern([]byte{0x42, 0x43})
	var cs []execCase
	for _, r := range []struct {
		name   string
		lba    uint64
		blocks uint32
	}{
		{"empty", 5, 0},
		{"one block", 7, 1},
		{"last block", nsBlocks - 1, 1},
		{"whole namespace", 0, nsBlocks},
		{"odd range across chunks", 3, 600},
	} {
		cs = append(cs,
			execCase{r.name, "count", r.lba, r.blocks, [8]uint64{64, 8, 2, half / 2}, 0},
			execCase{r.name, "count", r.lba, r.blocks, [8]uint64{128, 120, 0, 12345}, 0}, // zero matches
			execCase{r.name, "filter", r.lba, r.blocks, [8]uint64{64, 8, 2, 1 << 55}, 256 << 10},
			execCase{r.name, "aggregate", r.lba, r.blocks, [8]uint64{32, 16}, 0},
			execCase{r.name, "grep", r.lba, r.blocks, grep2, 4096},
		)
	}
	return append(cs,
		execCase{"result buffer too small", "filter", 0, 64, [8]uint64{64, 0, 5, 0}, 100},
		execCase{"result buffer too small", "grep", 0, 64, grep1, 64},
		execCase{"all match", "count", 0, 256, [8]uint64{8, 0, 5, 0}, 0},
		execCase{"records of 4 KiB", "aggregate", 0, 16, [8]uint64{4096, 4088}, 0},
	)
}

// TestExecShippedExtensions runs every shipped extension on the target and
// compares out[] and the result bytes with the Go reference on the same
// blocks.
func TestExecShippedExtensions(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "exec")
	ctx := ctxT(t)

	loaded := map[string]*initiator.Extension{}
	for _, name := range ext.Names() {
		elf, _ := ext.ELF(name)
		x, err := c.Load(ctx, name, elf)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		loaded[name] = x
	}

	for _, tc := range execCases() {
		t.Run(fmt.Sprintf("%s/%s/%v", tc.ext, tc.name, tc.args[:4]), func(t *testing.T) {
			var res *initiator.Buffer
			if tc.resultCap > 0 {
				res = buffer(t, c, tc.resultCap)
			}
			got, err := c.Exec(ctx, loaded[tc.ext], initiator.ExecRequest{
				NS: 1, LBA: tc.lba, Blocks: tc.blocks, Args: tc.args[:]}, res)
			if err != nil {
				t.Fatal(err)
			}

			data := e.data[tc.lba*blockSize : (tc.lba+uint64(tc.blocks))*blockSize]
			out, result, err := ref.Run(ref.Funcs[tc.ext], data, blockSize, tc.lba, tc.args, tc.resultCap, ref.ChunkMax)
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			if got.Out != out {
				t.Errorf("out = %v, reference %v", got.Out, out)
			}
			if !bytes.Equal(got.Result, result) {
				t.Errorf("result of %d bytes differs from the reference's %d", len(got.Result), len(result))
			}
		})
	}
}

func TestExecBadArgumentsIsExtensionError(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "badargs")
	ctx := ctxT(t)
	elf, _ := ext.ELF("count")
	x, err := c.Load(ctx, "count", elf)
	if err != nil {
		t.Fatal(err)
	}
	// A record size of 7 is refused by the extension itself.
	_, err = c.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: 1, Args: []uint64{7, 0, 0, 0}}, nil)
	if initiator.StatusOf(err) != fabric.StatusExtension {
		t.Fatalf("err = %v, want status %v", err, fabric.StatusExtension)
	}
}

// TestZeroCopyExecPath checks that results are written from the mmapped
// result map itself and that the target copied no byte on the exec path.
func TestZeroCopyExecPath(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "zerocopy")
	ctx := ctxT(t)

	mr := e.srv.ResultRegion().Bytes()
	mapMem := e.engine.ResultMemory()
	if unsafe.SliceData(mr) != unsafe.SliceData(mapMem) || len(mr) != len(mapMem) {
		t.Fatal("the result memory region is not the mmapped result map")
	}

	elf, _ := ext.ELF("filter")
	x, err := c.Load(ctx, "filter", elf)
	if err != nil {
		t.Fatal(err)
	}
	res := buffer(t, c, 256<<10)
	sentBefore := counter(t, c, "fabric_sent_bytes")
	r, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: nsBlocks, Args: []uint64{64, 8, 2, 1 << 56}}, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Result) == 0 {
		t.Fatal("filter matched nothing; the check below would prove nothing")
	}
	if got := counter(t, c, "exec_cpu_copy_bytes"); got != 0 {
		t.Errorf("exec_cpu_copy_bytes = %d, want 0", got)
	}
	if got := counter(t, c, "fabric_sent_bytes") - sentBefore; got != uint64(len(r.Result)) {
		t.Errorf("target sent %d bytes for a %d-byte result", got, len(r.Result))
	}
}

func TestExtensionsBelongToTenant(t *testing.T) {
	e := startTarget(t, envOptions{})
	ctx := ctxT(t)
	a := e.dial(t, "alice")
	elf, _ := ext.ELF("count")
	x, err := a.Load(ctx, "count", elf)
	if err != nil {
		t.Fatal(err)
	}

	// Another connection of the same tenant sees it; another tenant does not.
	a2 := e.dial(t, "alice")
	if _, err := a2.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: 1, Args: []uint64{64, 0, 5, 0}}, nil); err != nil {
		t.Fatalf("same tenant, second connection: %v", err)
	}
	b := e.dial(t, "bob")
	_, err = b.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: 1, Args: []uint64{64, 0, 5, 0}}, nil)
	if initiator.StatusOf(err) != fabric.StatusNoExtension {
		t.Fatalf("other tenant: err = %v, want %v", err, fabric.StatusNoExtension)
	}

	if err := a.Unload(ctx, x); err != nil {
		t.Fatal(err)
	}
	_, err = a2.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: 1, Args: []uint64{64, 0, 5, 0}}, nil)
	var se *fabric.StatusError
	if !errors.As(err, &se) || se.Status != fabric.StatusNoExtension {
		t.Fatalf("after unload: err = %v", err)
	}
}
