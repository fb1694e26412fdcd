// Package initiator is Ferry's client library: it connects to a target,
// loads eBPF extensions there, runs them over ranges of blocks and gets
// back only their results, and reads and writes blocks.
//
// Results and block data move by one-sided operations between the
// target's registered memory and Buffers, which are memory registered with
// the transport: the target writes an exec result straight into the
// caller's Buffer, and pulls the data of a write straight out of one.
//
// A Client is safe for concurrent use. Up to the queue depth agreed with
// the target are in flight at once; further calls wait. A call whose
// context ends returns at once, but the target may still be working on
// it: its Buffer stays in use until the target's reply arrives, and
// Buffer.Close waits for that.
//
// Addresses name the transport: "rdma://host:port" over rdma-core (an RDMA
// device or soft-RoCE), "tcp://host:port" for machines without RDMA.
package initiator
