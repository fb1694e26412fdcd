// Command ferry-target serves namespaces over a Ferry transport and runs
// initiators' eBPF extensions over their blocks.
//
//	ferry-target -listen tcp://0.0.0.0:7420 -ns 1=/dev/nvme0n1 -block-size 4096
//
// It needs root (or CAP_BPF and CAP_PERFMON). SIGINT or SIGTERM stops it:
// it stops taking requests, finishes those in flight, then exits.
package main
