//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package hostile

// ELFs maps each hostile program to its compiled ELF.
var ELFs = map[string][]byte{
	"bss":         _BssBytes,
	"kfunc":       _KfuncBytes,
	"not_syscall": _Not_syscallBytes,
	"oob":         _OobBytes,
	"own_map":     _Own_mapBytes,
	"printk":      _PrintkBytes,
	"probe_read":  _Probe_readBytes,
	"two_progs":   _Two_progsBytes,
}
