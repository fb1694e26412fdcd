package bpf

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Intake limits. The kernel would accept more; an extension does not need
// more, and every byte and instruction of untrusted input costs the target.
const (
	MaxELFSize = 1 << 20 // bytes of one extension's ELF
	MaxInsns   = 32768   // instructions of its program, subprograms included
	MaxRodata  = 64 << 10
)

// AllowedHelpers is the helper allow-list, by kernel name. Lookups give
// the extension its slot; bpf_loop is how it scans; the clock and random
// numbers read no kernel state an extension could leak. Everything else is
// refused: probe_read* and trace_printk read or write kernel state,
// map_update/delete are pointless on the engine's arrays, tail calls leave
// the inspected program.
var AllowedHelpers = []string{
	"bpf_get_prandom_u32",
	"bpf_ktime_get_ns",
	"bpf_loop",
	"bpf_map_lookup_elem",
}

var allowedHelpers = map[asm.BuiltinFunc]bool{
	asm.FnMapLookupElem: true,
	asm.FnLoop:          true,
	asm.FnKtimeGetNs:    true,
	asm.FnGetPrandomU32: true,
}

// The engine's maps as an extension must declare them (ferry.h).
var engineMaps = map[string]struct {
	valueSize uint32
	mmapable  bool
}{
	"ferry_data":    {DataMax, true},
	"ferry_result":  {ResultMax, true},
	"ferry_scratch": {ScratchMax, false},
}

// Report describes an extension that passed intake.
type Report struct {
	Program string   // the program's (C function's) name
	Section string   // always "syscall"
	License string   // from SEC("license")
	Insns   int      // instructions, subprograms included
	Maps    []string // maps the ELF declares, sorted
	Helpers []string // helpers it calls, sorted, by kernel name

	spec *ebpf.CollectionSpec
}

// Inspect checks an extension's ELF without the kernel: it must hold one
// SEC("syscall") program that uses only the engine's maps (plus .rodata),
// the helpers in AllowedHelpers, no kfuncs, no ksyms, and stay within
// MaxELFSize and MaxInsns. It never panics on hostile input. Errors are
// *RejectedError (errors.Is ErrRejected).
func Inspect(elf []byte) (*Report, error) {
	if len(elf) > MaxELFSize {
		return nil, rejectf(fmt.Sprintf("elf is %d bytes, more than %d", len(elf), MaxELFSize))
	}

	spec, err := parseELF(elf)
	if err != nil {
		return nil, err
	}

	if len(spec.Programs) != 1 {
		names := make([]string, 0, len(spec.Programs))
		for n := range spec.Programs {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, rejectf(fmt.Sprintf("want exactly one program, found %d %v",
			len(names), names))
	}
	var prog *ebpf.ProgramSpec
	for _, p := range spec.Programs {
		prog = p
	}
	if prog.Type != ebpf.Syscall || prog.SectionName != "syscall" {
		return nil, rejectf(fmt.Sprintf("program %s is in section %q (%s), want \"syscall\"",
			prog.Name, prog.SectionName, prog.Type))
	}

	r := &Report{
		Program: prog.Name,
		Section: prog.SectionName,
		License: prog.License,
		spec:    spec,
	}
	if err := checkMaps(spec, r); err != nil {
		return nil, err
	}
	if err := checkInsns(spec, prog, r); err != nil {
		return nil, err
	}
	return r, nil
}

// parseELF runs cilium's ELF reader and turns its panics into rejections:
// it is not written for hostile input.
func parseELF(elf []byte) (spec *ebpf.CollectionSpec, err error) {
	defer func() {
		if p := recover(); p != nil {
			spec, err = nil, rejectf(fmt.Sprintf("not a BPF ELF: parser panic: %v", p))
		}
	}()

	spec, err = ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, rejectf(fmt.Sprintf("not a BPF ELF: %v", err))
	}
	return spec, nil
}

func checkMaps(spec *ebpf.CollectionSpec, r *Report) error {
	for name, m := range spec.Maps {
		r.Maps = append(r.Maps, name)
		if err := checkMap(name, m); err != nil {
			return err
		}
	}
	sort.Strings(r.Maps)
	return nil
}

func checkMap(name string, m *ebpf.MapSpec) error {
	if want, ok := engineMaps[name]; ok {
		wantFlags := uint32(0)
		if want.mmapable {
			wantFlags = unix.BPF_F_MMAPABLE
		}
		switch {
		case m.Type != ebpf.Array || m.KeySize != 4 || m.ValueSize != want.valueSize:
			return &RejectedError{Map: name, Reason: fmt.Sprintf(
				"map is %s key %d value %d, want Array key 4 value %d",
				m.Type, m.KeySize, m.ValueSize, want.valueSize)}
		case m.Flags&^unix.BPF_F_MMAPABLE != 0 || (m.Flags != 0 && m.Flags != wantFlags):
			return &RejectedError{Map: name, Reason: fmt.Sprintf(
				"map flags %#x, want %#x", m.Flags, wantFlags)}
		}
		return nil
	}

	// Read-only constants are harmless and clang emits them for tables and
	// string literals. Writable globals (.data, .bss) would be shared by
	// every run of the extension at once: refused.
	isRodata := name == ".rodata" || strings.HasPrefix(name, ".rodata.")
	if isRodata && m.Type == ebpf.Array && m.Flags&unix.BPF_F_RDONLY_PROG != 0 &&
		m.InnerMap == nil {
		if m.ValueSize > MaxRodata {
			return &RejectedError{Map: name, Reason: fmt.Sprintf(
				"read-only data is %d bytes, more than %d", m.ValueSize, MaxRodata)}
		}
		return nil
	}
	if m.InnerMap != nil || m.Type == ebpf.ArrayOfMaps || m.Type == ebpf.HashOfMaps {
		return &RejectedError{Map: name, Reason: "map-in-map is not allowed"}
	}
	return &RejectedError{Map: name, Reason: "extensions may use only " +
		"ferry_data, ferry_result, ferry_scratch and .rodata"}
}

// Src values of a 64-bit immediate load (include/uapi/linux/bpf.h) that
// cilium's asm package does not name.
const (
	pseudoBTFID       = asm.Register(3) // BPF_PSEUDO_BTF_ID: a ksym
	pseudoMapIdx      = asm.Register(5)
	pseudoMapIdxValue = asm.Register(6)
)

func checkInsns(spec *ebpf.CollectionSpec, prog *ebpf.ProgramSpec, r *Report) error {
	helpers := map[string]bool{}
	for i := range prog.Instructions {
		ins := &prog.Instructions[i]
		r.Insns += int(ins.Size() / asm.InstructionSize)
		if r.Insns > MaxInsns {
			return rejectf(fmt.Sprintf("program has more than %d instructions", MaxInsns))
		}

		switch {
		case ins.IsKfuncCall():
			return &RejectedError{Helper: ins.Reference(), Reason: "kfunc calls are not allowed"}

		case ins.IsBuiltinCall():
			fn := asm.BuiltinFunc(ins.Constant)
			name := helperName(fn)
			if fn == asm.FnTailCall {
				return &RejectedError{Helper: name, Reason: "tail calls are not allowed"}
			}
			if !allowedHelpers[fn] {
				return &RejectedError{Helper: name, Reason: "helper is not on the allow-list " +
					strings.Join(AllowedHelpers, ", ")}
			}
			helpers[name] = true

		case ins.OpCode.JumpOp() == asm.Call && ins.Src != asm.PseudoCall:
			return rejectf(fmt.Sprintf("instruction %d: call of unknown kind %v", i, ins.Src))

		case ins.OpCode.IsDWordLoad():
			if err := checkLoad(spec, i, ins); err != nil {
				return err
			}
		}
	}

	r.Helpers = make([]string, 0, len(helpers))
	for h := range helpers {
		r.Helpers = append(r.Helpers, h)
	}
	sort.Strings(r.Helpers)
	return nil
}

// checkLoad vets a 64-bit immediate load: a constant, a callback address,
// or a reference to one of the maps that passed checkMaps.
func checkLoad(spec *ebpf.CollectionSpec, i int, ins *asm.Instruction) error {
	ref := ins.Reference()
	switch ins.Src {
	case asm.PseudoMapFD, asm.PseudoMapValue:
		if _, ok := spec.Maps[ref]; !ok {
			return &RejectedError{Map: ref, Reason: "reference to a map not in the ELF"}
		}
		return nil
	case asm.PseudoFunc:
		return nil
	case pseudoBTFID:
		return rejectf(fmt.Sprintf("instruction %d: ksym %q is not allowed", i, ref))
	case pseudoMapIdx, pseudoMapIdxValue:
		return rejectf(fmt.Sprintf("instruction %d: map by index is not allowed", i))
	case asm.R0:
		// A plain constant has no reference; an unresolved symbol (an extern
		// __ksym, inline-asm relocation) does.
		if ref != "" {
			return rejectf(fmt.Sprintf("instruction %d: reference to symbol %q "+
				"(ksyms and externs are not allowed)", i, ref))
		}
		return nil
	default:
		return rejectf(fmt.Sprintf("instruction %d: load of unknown kind %v", i, ins.Src))
	}
}

// helperName turns asm.FnProbeReadKernel into "bpf_probe_read_kernel".
func helperName(fn asm.BuiltinFunc) string {
	s, ok := strings.CutPrefix(fn.String(), "Fn")
	if !ok {
		return fmt.Sprintf("helper #%d", int32(fn))
	}
	var b strings.Builder
	b.WriteString("bpf")
	rs := []rune(s)
	for i, c := range rs {
		if unicode.IsUpper(c) {
			b.WriteByte('_')
		} else if unicode.IsDigit(c) && i > 0 && !unicode.IsDigit(rs[i-1]) &&
			!unicode.IsUpper(rs[i-1]) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
