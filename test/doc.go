// Package test holds Ferry's end-to-end suites (e2e) and, with the RDMA
// provider, the soft-RoCE VM harness. The suites drive a real target and
// real initiators over a real transport, with kernel eBPF and real files.
package test
