//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package ext

// The build constraint matches the one bpf2go puts on the *_bpfel.go files.
func init() {
	elfs["aggregate"] = _AggregateBytes
	elfs["count"] = _CountBytes
	elfs["filter"] = _FilterBytes
	elfs["grep"] = _GrepBytes
}
