// Package ext holds the extensions that ship with Ferry, compiled to BPF
// ELF objects and embedded in the binary:
//
//   - count: counts fixed-size records whose u64 field compares true
//     against a value.
//   - filter: appends those records to the result.
//   - aggregate: sum, min, max and count of a u64 field.
//   - grep: counts the occurrences of a 1 to 16 byte pattern and appends
//     their absolute byte offsets.
//
// The argument conventions are in each C file's header comment and in
// package ref, which implements the same functions in Go. The sources use
// the SDK header bpf/include/ferry.h and are compiled by bpf2go (see
// gen.go) for little-endian BPF only, so on big-endian hosts Names is
// empty.
//
// Loading them needs what package bpf needs: Linux 6.1 or later with
// BPF_PROG_TYPE_SYSCALL, bpf_loop and BPF_F_MMAPABLE arrays, and root
// (CAP_BPF and CAP_PERFMON). Every extension here is meant to pass the
// verifier on 6.1 as well as on current kernels.
package ext
