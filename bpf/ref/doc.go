// Package ref implements the shipped extensions (package ext) in plain Go,
// with the same argument conventions and the same chunk semantics: data is
// processed in chunks of at most ChunkMax bytes, in order, carrying out[]
// and the result from one chunk to the next, exactly as the target runs
// the BPF programs. Tests compare the kernel's answers to these; the
// initiator may use them to check results or to run a request locally.
//
// It needs nothing from the kernel.
package ref
