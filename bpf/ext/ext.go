package ext

import "sort"

// elfs maps an extension's name to its compiled ELF. The ELFs exist only
// for little-endian targets (bpf2go -target bpfel); see shipped_other.go.
var elfs = map[string][]byte{}

// ELF returns the compiled ELF of the named extension, ready for
// bpf.Engine.Load. The bytes are shared: do not modify them.
func ELF(name string) ([]byte, bool) {
	b, ok := elfs[name]
	return b, ok
}

// Names returns the names of the shipped extensions, sorted.
func Names() []string {
	names := make([]string, 0, len(elfs))
	for n := range elfs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
