// Package e2e runs a Ferry target and initiators against each other over a
// real transport on 127.0.0.1: loading and running every shipped
// extension, block reads and writes, concurrency, and hostile input.
//
// Needs root for kernel eBPF; without it the tests skip, except in CI
// (CI=true), where they fail.
package e2e
