package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Extension is a loaded, verified extension program.
type Extension struct {
	name    string
	program string
	insns   int
	prog    *ebpf.Program
}

// Name is the name it was loaded under.
func (x *Extension) Name() string { return x.name }

// Program is the name of its entry function.
func (x *Extension) Program() string { return x.program }

// Insns is its instruction count before verification.
func (x *Extension) Insns() int { return x.insns }

// Close unloads it.
func (x *Extension) Close() error {
	if err := x.prog.Close(); err != nil {
		return fmt.Errorf("close extension %s: %w", x.name, err)
	}
	return nil
}

// Load checks elf with Inspect, binds its ferry_* maps to the engine's and
// loads it into the kernel. A verifier refusal is a *VerifierError.
func (e *Engine) Load(name string, elf []byte) (*Extension, error) {
	rep, err := Inspect(elf)
	if err != nil {
		return nil, fmt.Errorf("load extension %s: %w", name, err)
	}

	// One ELF serves any engine: make its map specs match this engine's
	// maps, then substitute them.
	spec := rep.spec
	repl := map[string]*ebpf.Map{}
	for mname, m := range map[string]*ebpf.Map{
		"ferry_data": e.data, "ferry_result": e.result, "ferry_scratch": e.scratch,
	} {
		ms, ok := spec.Maps[mname]
		if !ok {
			continue
		}
		ms.MaxEntries = uint32(e.cfg.Slots)
		ms.Flags = 0
		if mname != "ferry_scratch" {
			ms.Flags = unix.BPF_F_MMAPABLE
		}
		repl[mname] = m
	}

	opts := ebpf.CollectionOptions{MapReplacements: repl}
	opts.Programs.LogLevel = ebpf.LogLevelStats
	if e.cfg.VerboseVerifier {
		opts.Programs.LogLevel |= ebpf.LogLevelBranch
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		if ve := verifierError(err); ve != nil {
			e.log.Debug("extension failed verification", "name", name, "error", ve.Message())
			return nil, fmt.Errorf("load extension %s: %w", name, ve)
		}
		return nil, fmt.Errorf("load extension %s: %w", name, err)
	}

	// Keep the program; .rodata stays alive through the program's reference.
	prog := coll.Programs[rep.Program]
	delete(coll.Programs, rep.Program)
	coll.Close()

	x := &Extension{name: name, program: rep.Program, insns: rep.Insns, prog: prog}
	e.log.Debug("extension loaded", "name", name, "program", rep.Program,
		"insns", rep.Insns, "helpers", rep.Helpers)
	return x, nil
}

// RunInput is the input half of struct ferry_ctx; the engine adds the slot.
type RunInput struct {
	// Data is the slot whose Data holds this chunk's blocks; nil means the
	// slot the extension runs on. A request may read its next chunk into
	// another slot while this one runs.
	Data *Slot

	DataLen, ResultCap, ResultLen, BlockSize, Chunk uint32
	LBA                                             uint64
	Args                                            [8]uint64
	Out                                             [4]uint64
}

// RunOutput is what an extension hands back.
type RunOutput struct {
	ResultLen uint32        // result bytes now in the slot, <= ResultCap
	Ret       int32         // the program's return value; negative is its error
	Out       [4]uint64     // scalar outputs, to carry into the next chunk
	Duration  time.Duration // wall time of BPF_PROG_RUN
}

// ctxSize is sizeof(struct ferry_ctx).
const ctxSize = 8*4 + 8 + 8*8 + 4*8

// outOffset is offsetof(struct ferry_ctx, out).
const outOffset = 8*4 + 8 + 8*8

func (in *RunInput) marshal(slot, dataSlot int) []byte {
	b := make([]byte, 0, ctxSize)
	ne := binary.NativeEndian
	for _, v := range []uint32{uint32(slot), in.DataLen, in.ResultCap, in.ResultLen,
		in.BlockSize, in.Chunk, uint32(dataSlot), 0} {
		b = ne.AppendUint32(b, v)
	}
	b = ne.AppendUint64(b, in.LBA)
	for _, v := range in.Args {
		b = ne.AppendUint64(b, v)
	}
	for _, v := range in.Out {
		b = ne.AppendUint64(b, v)
	}
	return b
}

// Run executes x once over slot s: ctx.slot = s.Index and the rest from in.
// The returned error is only for failures to run; an extension's own error
// is a negative RunOutput.Ret.
func (e *Engine) Run(x *Extension, s *Slot, in RunInput) (RunOutput, error) {
	switch {
	case x == nil || s == nil || s.e != e || (in.Data != nil && in.Data.e != e):
		return RunOutput{}, fmt.Errorf("run extension: %w", ErrInvalidInput)
	case in.DataLen > DataMax || in.ResultCap > ResultMax || in.ResultLen > in.ResultCap:
		return RunOutput{}, fmt.Errorf("run extension %s: data %d, result %d/%d: %w",
			x.name, in.DataLen, in.ResultLen, in.ResultCap, ErrInvalidInput)
	}

	// For syscall programs the kernel copies the context back into the
	// input buffer; cilium/ebpf hands it over as ContextOut.
	data := s
	if in.Data != nil {
		data = in.Data
	}
	ctxIn := in.marshal(s.Index, data.Index)
	ctxOut := make([]byte, ctxSize)
	opts := ebpf.RunOptions{Context: ctxIn, ContextOut: ctxOut}

	var (
		ret   uint32
		err   error
		start = time.Now()
	)
	for {
		ret, err = x.prog.Run(&opts)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	d := time.Since(start)
	if err != nil {
		return RunOutput{}, fmt.Errorf("run extension %s: %w", x.name, err)
	}

	ne := binary.NativeEndian
	out := RunOutput{
		ResultLen: ne.Uint32(ctxOut[12:]),
		Ret:       int32(ret),
		Duration:  d,
	}
	for i := range out.Out {
		out.Out[i] = ne.Uint64(ctxOut[outOffset+8*i:])
	}
	if out.ResultLen > in.ResultCap {
		return out, fmt.Errorf("run extension %s: result length %d above cap %d: %w",
			x.name, out.ResultLen, in.ResultCap, ErrBadOutput)
	}
	return out, nil
}
