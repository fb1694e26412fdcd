package bpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/bpf/ref"
)

// loadShipped loads every shipped extension into e, closed at cleanup.
func loadShipped(tb testing.TB, e *Engine) map[string]*Extension {
	tb.Helper()
	xs := map[string]*Extension{}
	for _, name := range ext.Names() {
		elf, _ := ext.ELF(name)
		x, err := e.Load(name, elf)
		if err != nil {
			tb.Fatalf("load %s: %v", name, err)
		}
		tb.Cleanup(func() { x.Close() })
		xs[name] = x
	}
	return xs
}

// request runs x over data the way the target does: chunk by chunk on one
// slot, carrying out[] and the result length. The slot's bytes past each
// chunk are filled with noise, so reading beyond data_len shows up as a
// wrong answer. It returns the first negative Ret, if any.
func request(tb testing.TB, e *Engine, x *Extension, s *Slot, data []byte, bs uint32,
	lba uint64, args [8]uint64, resultCap, chunkSize int) ([4]uint64, []byte, int32) {
	tb.Helper()
	noise := rand.New(rand.NewPCG(1, 2))
	in := RunInput{ResultCap: uint32(resultCap), BlockSize: bs, Args: args}
	// With a second slot free, chunks alternate between the two for their
	// data, as when the target reads ahead.
	dataSlots := []*Slot{s}
	if extra, ok := e.TryAcquire(); ok {
		defer e.Release(extra)
		dataSlots = append(dataSlots, extra)
	}
	for off := 0; off == 0 || off < len(data); off += chunkSize {
		end := min(off+chunkSize, len(data))
		d := dataSlots[int(in.Chunk)%len(dataSlots)]
		n := copy(d.Data, data[off:end])
		for i := n; i < len(d.Data) && i < n+4096; i++ {
			d.Data[i] = byte(noise.Uint32())
		}
		in.Data = d
		in.DataLen = uint32(n)
		in.LBA = lba + uint64(off)/uint64(bs)
		out, err := e.Run(x, s, in)
		if err != nil {
			tb.Fatalf("run %s chunk %d: %v", x.Name(), in.Chunk, err)
		}
		if out.Ret != 0 {
			return out.Out, nil, out.Ret
		}
		in.Out, in.ResultLen = out.Out, out.ResultLen
		in.Chunk++
	}
	return in.Out, bytes.Clone(s.Result[:in.ResultLen]), 0
}

// records makes n records of size rec whose u64 field at field is drawn
// from [0, spread); the other bytes are random.
func records(seed uint64, n, rec, field int, spread uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n*rec)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(b[i*rec+field:], r.Uint64N(spread))
	}
	return b
}

// text makes n bytes from a four-letter alphabet, so short patterns recur.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = "acgt"[r.IntN(4)]
	}
	return b
}

type extCase struct {
	name      string
	ext       string
	data      []byte
	bs        uint32
	lba       uint64
	args      [8]uint64
	resultCap int
	chunk     int  // chunk size; 0 means DataMax
	wantErr   bool // bad arguments: ref errs, kernel returns FERRY_EINVAL
}

func recArgs(rec, field, op, value uint64) [8]uint64 {
	return [8]uint64{rec, field, op, value}
}

func extCases() []extCase {
	const k = 1024
	var cs []extCase
	add := func(c extCase) { cs = append(cs, c) }

	// Record extensions over the same shapes.
	for _, x := range []string{"count", "filter", "aggregate"} {
		for _, op := range []uint64{0, 1, 2, 3, 4, 5} {
			add(extCase{name: fmt.Sprintf("rec8/op%d", op), ext: x,
				data: records(1, 4*k, 8, 0, 16), bs: 512, args: recArgs(8, 0, op, 7),
				resultCap: ResultMax})
		}
		add(extCase{name: "empty", ext: x, data: nil, bs: 512,
			args: recArgs(16, 8, 0, 1), resultCap: ResultMax})
		add(extCase{name: "one-block", ext: x, data: records(2, 32, 16, 8, 4), bs: 512,
			args: recArgs(16, 8, 0, 1), resultCap: ResultMax})
		add(extCase{name: "rec64-field56", ext: x, data: records(3, 2*k, 64, 56, 8),
			bs: 4096, args: recArgs(64, 56, 3, 2), resultCap: ResultMax})
		add(extCase{name: "rec4096", ext: x, data: records(4, 64, 4096, 4088, 4),
			bs: 4096, args: recArgs(4096, 4088, 0, 3), resultCap: ResultMax})
		add(extCase{name: "rec24-bs48", ext: x, data: records(5, 1000, 24, 16, 3),
			bs: 48, args: recArgs(24, 16, 0, 1), resultCap: ResultMax, chunk: 4800})
		add(extCase{name: "no-match", ext: x, data: records(6, 8*k, 32, 0, 100), bs: 512,
			args: recArgs(32, 0, 0, 1<<40), resultCap: ResultMax})
		add(extCase{name: "all-match", ext: x, data: records(7, 8*k, 32, 0, 100), bs: 512,
			args: recArgs(32, 0, 5, 0), resultCap: ResultMax})
		// 2.5 MiB in 1 MiB chunks: a full slot, then carry, then a short last chunk.
		add(extCase{name: "multi-chunk-full", ext: x, data: records(8, 80*k, 32, 24, 50),
			bs: 4096, lba: 77, args: recArgs(32, 24, 2, 10), resultCap: ResultMax})
		// Many small chunks: out[] and result_len carried 20 times.
		add(extCase{name: "multi-chunk-small", ext: x, data: records(9, 10*k, 16, 0, 20),
			bs: 512, args: recArgs(16, 0, 0, 3), resultCap: ResultMax, chunk: 8 * k})
		add(extCase{name: "tiny-result", ext: x, data: records(10, 4*k, 16, 0, 4), bs: 512,
			args: recArgs(16, 0, 0, 1), resultCap: 100})
		add(extCase{name: "no-result", ext: x, data: records(11, 4*k, 16, 0, 4), bs: 512,
			args: recArgs(16, 0, 0, 1), resultCap: 0})
		add(extCase{name: "truncate-across-chunks", ext: x,
			data: records(12, 16*k, 64, 0, 2), bs: 512, args: recArgs(64, 0, 0, 1),
			resultCap: 64 * 300, chunk: 64 * k})

		// Bad arguments.
		for i, a := range [][8]uint64{
			recArgs(0, 0, 0, 0), recArgs(12, 0, 0, 0), recArgs(8192, 0, 0, 0),
			recArgs(24, 0, 0, 0) /* 24 does not divide 512 */, recArgs(16, 4, 0, 0),
			recArgs(16, 16, 0, 0), recArgs(16, 1<<63, 0, 0),
		} {
			add(extCase{name: fmt.Sprintf("bad-args-%d", i), ext: x,
				data: records(13, 64, 8, 0, 4), bs: 512, args: a, wantErr: true,
				resultCap: ResultMax})
		}
	}
	for _, x := range []string{"count", "filter"} {
		add(extCase{name: "bad-op", ext: x, data: records(13, 64, 8, 0, 4), bs: 512,
			args: recArgs(8, 0, 6, 0), wantErr: true, resultCap: ResultMax})
	}

	// grep.
	dna := text(20, 3*k*k+512*7)
	for _, p := range []string{"a", "gt", "acg", "gattaca", "acgtacgt", "acgtacgta",
		"tttttttttttttttt", "cagtcagtcagtcag"} {
		add(extCase{name: "pattern-" + p, ext: "grep", data: dna[:256*k], bs: 512,
			lba: 5, args: ref.GrepPattern([]byte(p)), resultCap: ResultMax})
	}
	add(extCase{name: "multi-chunk", ext: "grep", data: dna, bs: 512, lba: 1 << 30,
		args: ref.GrepPattern([]byte("gattac")), resultCap: ResultMax})
	add(extCase{name: "seams", ext: "grep", data: dna[:64*k], bs: 512,
		args: ref.GrepPattern([]byte("acgtac")), resultCap: ResultMax, chunk: 4 * k})
	add(extCase{name: "truncated", ext: "grep", data: dna[:64*k], bs: 512,
		args: ref.GrepPattern([]byte("ac")), resultCap: 8*100 + 5})
	add(extCase{name: "no-match", ext: "grep", data: dna[:64*k], bs: 512,
		args: ref.GrepPattern([]byte("xyz")), resultCap: ResultMax})
	zeros := make([]byte, 8*k)
	add(extCase{name: "all-match", ext: "grep", data: zeros, bs: 512,
		args: ref.GrepPattern([]byte{0, 0, 0}), resultCap: ResultMax})
	add(extCase{name: "empty", ext: "grep", data: nil, bs: 512,
		args: ref.GrepPattern([]byte("a")), resultCap: ResultMax})
	add(extCase{name: "one-block", ext: "grep", data: dna[:512], bs: 512,
		args: ref.GrepPattern([]byte("ca")), resultCap: ResultMax})
	// A pattern at the very end of a full slot: the slow path of grep_at.
	tail := bytes.Repeat([]byte{'x'}, DataMax)
	copy(tail[DataMax-16:], "0123456789abcdef")
	copy(tail[DataMax-9:], "89abcdefg")
	for _, p := range []string{"0123456789abcdef", "89abcdefg", "g", "fg", "efg"} {
		add(extCase{name: "slot-end-" + p, ext: "grep", data: tail, bs: 4096,
			args: ref.GrepPattern([]byte(p)), resultCap: ResultMax})
	}
	for _, n := range []uint64{0, 17, 1 << 40} {
		args := ref.GrepPattern([]byte("a"))
		args[0] = n
		add(extCase{name: fmt.Sprintf("bad-length-%d", n), ext: "grep", data: dna[:512],
			bs: 512, args: args, wantErr: true, resultCap: ResultMax})
	}
	return cs
}

func TestExtensionsMatchRef(t *testing.T) {
	e := newTestEngine(t, 4)
	xs := loadShipped(t, e)

	// Run on a slot other than 0, so a slot index mixed up with 0 shows,
	// and leave one free for request's data.
	var s *Slot
	for range e.Slots() - 1 {
		var err error
		if s, err = e.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer e.Release(s)
	}
	if s.Index != e.Slots()-2 {
		t.Fatalf("acquired slot %d last, want %d", s.Index, e.Slots()-2)
	}

	for _, c := range extCases() {
		t.Run(c.ext+"/"+c.name, func(t *testing.T) {
			chunk := c.chunk
			if chunk == 0 {
				chunk = DataMax
			}
			wantOut, wantRes, wantErr := ref.Run(ref.Funcs[c.ext], c.data, c.bs, c.lba,
				c.args, c.resultCap, chunk)
			out, res, ret := request(t, e, xs[c.ext], s, c.data, c.bs, c.lba, c.args,
				c.resultCap, chunk)

			if c.wantErr {
				if !errors.Is(wantErr, ref.ErrInvalid) {
					t.Fatalf("ref: got %v, want ErrInvalid", wantErr)
				}
				if ret != -22 {
					t.Fatalf("kernel: Ret %d, want -22 (FERRY_EINVAL)", ret)
				}
				return
			}
			if wantErr != nil || ret != 0 {
				t.Fatalf("ref error %v, kernel Ret %d", wantErr, ret)
			}
			if out != wantOut {
				t.Errorf("out = %v, want %v", out, wantOut)
			}
			if !bytes.Equal(res, wantRes) {
				t.Errorf("result: %d bytes, want %d (equal prefix %d)", len(res),
					len(wantRes), commonPrefix(res, wantRes))
			}
		})
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestExtensionCasesMeaningful guards the table itself: the interesting
// cases must actually match something, truncate, or find nothing.
func TestExtensionCasesMeaningful(t *testing.T) {
	for _, c := range extCases() {
		chunk := c.chunk
		if chunk == 0 {
			chunk = DataMax
		}
		out, _, err := ref.Run(ref.Funcs[c.ext], c.data, c.bs, c.lba, c.args, c.resultCap,
			chunk)
		if c.wantErr || err != nil {
			continue
		}
		switch {
		case c.name == "no-match" && c.ext != "aggregate" && out[0] != 0,
			c.name == "all-match" && c.ext != "aggregate" && out[0] == 0,
			(c.name == "tiny-result" || c.name == "truncated") && c.ext != "count" &&
				c.ext != "aggregate" && out[0] == out[1]:
			t.Errorf("%s/%s: out %v does not exercise the case", c.ext, c.name, out)
		}
	}
}

func TestRunChecksInput(t *testing.T) {
	e := newTestEngine(t, 1)
	xs := loadShipped(t, e)
	s, err := e.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Release(s)

	for _, in := range []RunInput{
		{DataLen: DataMax + 1, BlockSize: 512},
		{ResultCap: ResultMax + 1, BlockSize: 512},
		{ResultCap: 8, ResultLen: 16, BlockSize: 512},
	} {
		if _, err := e.Run(xs["count"], s, in); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Run(%+v) = %v, want ErrInvalidInput", in, err)
		}
	}

	other := newTestEngine(t, 1)
	os, err := other.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release(os)
	if _, err := e.Run(xs["count"], os, RunInput{BlockSize: 512}); !errors.Is(err,
		ErrInvalidInput) {
		t.Errorf("Run with another engine's slot = %v, want ErrInvalidInput", err)
	}
}
