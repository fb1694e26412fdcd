// Package fabric defines Ferry's wire protocol and the transport interface
// that carries it.
//
// The transport interface has RDMA semantics whatever provider sits below
// it: memory is registered before a peer may touch it, a registered region
// is described to the peer as (address, key, length), one-sided writes and
// reads move bytes between registered regions without involving the peer's
// application code, and small two-sided messages flow under credit-based
// flow control so that a sender can never overrun the receive buffers its
// peer has posted. Target and initiator code is written against this
// interface only, so the TCP provider (fabric/tcp) and the RDMA provider
// (rdma) are interchangeable.
//
// The wire protocol (wire.go) is the content of the two-sided messages:
// a fixed, versioned header followed by an op-specific body. Bulk data
// never travels inside a message; a message carries the description of a
// registered region and the peer moves the data with a one-sided operation,
// as NVMe over RDMA does.
//
// The package needs nothing from the kernel.
package fabric
