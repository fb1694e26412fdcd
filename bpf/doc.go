// Package bpf runs Ferry extensions: untrusted eBPF programs that a storage
// target runs over blocks inside the kernel, so that only their result
// crosses the network.
//
// An Engine owns three BPF array maps with one element per slot: the block
// data (DataMax bytes a slot), the result (ResultMax) and scratch
// (ScratchMax). The data and result maps are mmapped, so the target reads
// blocks straight into a slot (O_DIRECT, RDMA) and sends results straight
// out of one. An extension is one BPF_PROG_TYPE_SYSCALL program; Run fills
// its context (struct ferry_ctx in bpf/include/ferry.h, mirrored by
// RunInput and RunOutput) and executes it once with BPF_PROG_RUN.
//
// Extensions are untrusted. Load first runs Inspect, a kernel-free intake
// check (one syscall program, only the engine's maps and .rodata, only the
// helpers in AllowedHelpers, no kfuncs or ksyms), then hands the program to
// the kernel verifier and reports its log in a *VerifierError if it fails.
//
// Kernel requirements: Linux 6.1 or later (BPF_PROG_TYPE_SYSCALL with
// BPF_PROG_RUN: 5.14; bpf_loop: 5.17; mmapable arrays: 5.5), BPF JIT, and
// CAP_BPF plus CAP_PERFMON (in practice root). Unprivileged BPF is not
// enough: syscall programs are privileged-only.
package bpf
