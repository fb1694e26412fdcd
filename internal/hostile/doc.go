// Package hostile holds extensions that break the rules, compiled from
// bpf/testdata/*.c, for the intake and verifier tests of package bpf:
// forbidden helpers, kfuncs, own maps, writable globals, two programs, a
// program of the wrong type, and an out-of-bounds access that only the
// kernel verifier catches. Nothing outside tests should import it.
//
// It needs nothing from the kernel; loading its programs is the test.
package hostile
