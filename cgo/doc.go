// Package cgo is Ferry's thin binding of libibverbs and librdmacm, and the
// only package of the module that imports "C". It maps the C objects one
// to one onto Go types (device list, protection domain, memory region,
// completion channel and queue, rdma_cm event channel and identifier with
// its queue pair) and adds nothing but error wrapping and a count of open
// objects. The provider built on it, with the policy (credits, buffers,
// waiting), is package rdma.
//
// Building it needs cgo, rdma-core's headers and libraries (Debian:
// libibverbs-dev, librdmacm-dev); running it needs an RDMA device, real or
// soft-RoCE (rdma_rxe), and RLIMIT_MEMLOCK large enough for what is
// registered. Without cgo the package still compiles: every constructor
// then fails with an error wrapping fabric.ErrNotSupported.
//
// # Rules for callers
//
//   - Every object has a Close that frees it; close in the reverse order
//     of creation (memory regions and queue pairs before their protection
//     domain, queue pairs before their completion queues, completion
//     queues before their channel, identifiers before their event channel).
//     Open reports how many of each are open, so tests can check that
//     they all went.
//   - Memory handed to RegMR is kept by the device until the region is
//     closed. Pass memory that Go does not manage (an mmapped BPF map, an
//     anonymous mapping), or pin Go memory with runtime.Pinner for as long
//     as the region lives: RegMR takes an address, not a Go pointer, so
//     the cgo pointer checks cannot see it.
//   - Channel file descriptors are made non-blocking at creation: GetEvent
//     on an empty channel fails with EAGAIN, and callers wait for the
//     descriptor to become readable (package rdma uses Go's poller).
//   - Methods of one object are not synchronised by this package beyond
//     what the C libraries guarantee (posting and polling are thread safe
//     in rdma-core; creation and destruction must not race with use).
package cgo
