package bpf

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/internal/hostile"
)

func TestInspectShipped(t *testing.T) {
	for _, name := range ext.Names() {
		elf, ok := ext.ELF(name)
		if !ok {
			t.Fatalf("no ELF for %s", name)
		}
		r, err := Inspect(elf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Program != name || r.Section != "syscall" || r.Insns == 0 ||
			!slices.Contains(r.Helpers, "bpf_loop") {
			t.Errorf("%s: report %+v", name, r)
		}
	}
	if got := ext.Names(); !slices.Equal(got, []string{"aggregate", "count", "filter", "grep"}) {
		t.Errorf("Names() = %v", got)
	}
}

func TestInspectRejects(t *testing.T) {
	count, _ := ext.ELF("count")
	for _, c := range []struct {
		name       string
		elf        []byte
		helper     string
		mapName    string
		reasonPart string
	}{
		{name: "empty", elf: nil, reasonPart: "not a BPF ELF"},
		{name: "garbage", elf: []byte("this is not an ELF file at all"),
			reasonPart: "not a BPF ELF"},
		{name: "truncated-header", elf: count[:40], reasonPart: "not a BPF ELF"},
		{name: "truncated-half", elf: count[:len(count)/2], reasonPart: "not a BPF ELF"},
		{name: "too-big", elf: make([]byte, MaxELFSize+1), reasonPart: "more than"},
		{name: "probe_read", elf: hostile.ELFs["probe_read"],
			helper: "bpf_probe_read_kernel"},
		{name: "printk", elf: hostile.ELFs["printk"], helper: "bpf_trace_printk"},
		{name: "kfunc", elf: hostile.ELFs["kfunc"], helper: "bpf_rcu_read_lock",
			reasonPart: "kfunc"},
		{name: "own_map", elf: hostile.ELFs["own_map"], mapName: "stash"},
		{name: "bss", elf: hostile.ELFs["bss"], mapName: ".bss"},
		{name: "two_progs", elf: hostile.ELFs["two_progs"],
			reasonPart: "exactly one program, found 2"},
		{name: "not_syscall", elf: hostile.ELFs["not_syscall"], reasonPart: "section"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Inspect(c.elf)
			var re *RejectedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRejected) {
				t.Fatalf("Inspect = %v, want a RejectedError", err)
			}
			if re.Helper != c.helper || re.Map != c.mapName ||
				!strings.Contains(re.Reason, c.reasonPart) {
				t.Errorf("got %+v, want helper %q map %q reason ~%q", re, c.helper,
					c.mapName, c.reasonPart)
			}
			t.Log(err)
		})
	}
}

func TestLoadRejectsBeforeKernel(t *testing.T) {
	e := newTestEngine(t, 1)
	_, err := e.Load("printk", hostile.ELFs["printk"])
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "bpf_trace_printk") {
		t.Fatalf("Load = %v, want a rejection naming bpf_trace_printk", err)
	}
}

func TestLoadVerifierError(t *testing.T) {
	e := newTestEngine(t, 2)
	if _, err := Inspect(hostile.ELFs["oob"]); err != nil {
		t.Fatalf("oob must pass intake to reach the verifier: %v", err)
	}
	_, err := e.Load("oob", hostile.ELFs["oob"])
	var ve *VerifierError
	if !errors.As(err, &ve) || !errors.Is(err, ErrVerifier) {
		t.Fatalf("Load = %v, want a VerifierError", err)
	}
	var cve *ebpf.VerifierError
	if !errors.As(err, &cve) {
		t.Errorf("cilium's VerifierError is not reachable through Unwrap")
	}
	// The kernel's words for a variable offset it cannot bound.
	if !strings.Contains(ve.Log, "math between map_value pointer and register with "+
		"unbounded min value is not allowed") {
		t.Errorf("log lacks the verifier's reason:\n%s", ve.Log)
	}
	t.Logf("%v\n%s", err, ve.Log)
}

func FuzzInspect(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, elf []byte) {
		r, err := Inspect(elf)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error %v is not a rejection", err)
			}
			return
		}
		if r.Section != "syscall" || r.Insns > MaxInsns {
			t.Fatalf("accepted %+v", r)
		}
	})
}

var writeSeeds = flag.Bool("write-seeds", false,
	"rewrite testdata/fuzz/FuzzInspect from the shipped and hostile ELFs")

// TestWriteFuzzSeeds regenerates the seed corpus of FuzzInspect when run
// with -write-seeds; otherwise it checks the corpus is there.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzInspect")
	if !*writeSeeds {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("no seed corpus in %s (run with -write-seeds): %v", dir, err)
		}
		return
	}

	seeds := map[string][]byte{
		"garbage":   []byte("\x7fELF garbage that ends early"),
		"elf-magic": []byte("\x7fELF\x02\x01\x01"),
	}
	for _, name := range ext.Names() {
		elf, _ := ext.ELF(name)
		seeds[name] = elf
		seeds[name+"-truncated"] = elf[:len(elf)*2/3]
		seeds[name+"-header"] = elf[:64]
	}
	for _, name := range []string{"printk", "own_map", "two_progs", "kfunc"} {
		seeds["hostile-"+name] = hostile.ELFs[name]
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
