// Package rdma is the RDMA provider of fabric.Transport: reliable
// connected (RC) queue pairs set up through rdma_cm, two-sided sends into
// pre-posted receive buffers under credit flow control, and one-sided
// RDMA writes and reads into registered memory. It speaks Go types only;
// the verbs calls are in package cgo.
//
// # What it needs
//
//   - rdma-core's libraries (Debian: libibverbs1, librdmacm1,
//     ibverbs-providers; libibverbs-dev and librdmacm-dev to build) and a
//     cgo build. Without cgo, New fails with fabric.ErrNotSupported.
//   - An RDMA device with an IP address on its interface: hardware RoCE or
//     InfiniBand, or soft-RoCE (the rdma_rxe module: AddRxe, or `rdma link
//     add rxe0 type rxe netdev eth0`). New fails with an error wrapping
//     fabric.ErrNotSupported when there is none.
//   - RLIMIT_MEMLOCK for everything registered: the regions of the caller
//     plus, per connection, (RecvDepth+1) receive buffers and up to 130
//     send buffers of MaxMessage+8 bytes. New raises the soft limit to the
//     hard one (to unlimited as root) and logs a warning when it stays
//     under 64 MiB; a registration the limit refuses fails with an error
//     that names the limit.
//
// # Devices
//
// A Transport uses one device, Options.Device or the first one librdmacm
// lists, and one protection domain on it; Register registers there, so a
// region's Remote() is the buffer's virtual address and the region's
// rkey. rdma_cm picks the device of a connection from its address: a Dial
// or a connect request that lands on another device is refused. On the
// one-rxe test bed that is always the same device. Serving several devices
// would need a protection domain and a registration per device and a
// RemoteRegion per connection; that is open work.
//
// DeviceForNetdev, AddRxe, DelRxe and ListLinks find and manage devices
// (sysfs through rdmamap, RDMA netlink through vishvananda/netlink).
//
// # Connection set-up
//
// The active side resolves the address and route, creates its queue pair
// and posts its receive buffers, then connects with a 16-byte hello as
// private data; the passive side checks it, moves the new rdma_cm id to an
// event channel of its own, creates its queue pair, posts its buffers and
// accepts with its own hello:
//
//	0  magic       u32  0x4d445246
//	4  version     u16  1
//	6  reserved    u16  zero
//	8  recvDepth   u32  ordinary receive buffers this side posts, 1..16384
//	12 maxMessage  u32  largest message it accepts, 512..16 MiB
//
// Both use the smaller maxMessage; each side's send credits start at the
// peer's recvDepth. Receive buffers are posted before connect and accept,
// so the first message can never find the queue empty.
//
// # Messages and credits
//
// Every two-sided message starts with an 8-byte header, little endian:
//
//	0  credits  u32  receive buffers returned to the receiver of the message
//	4  acked    u16  credit-only messages the sender has taken in, mod 2^16
//	6  flags    u8   1: credit-only (no payload)
//	7  reserved u8   zero
//
// Each side posts recvDepth+1 receive buffers: recvDepth for ordinary
// messages, which the peer sends only with a credit, and one in reserve
// for credit-only messages, which need no credit. A message's buffer is
// reposted when the application releases it, and only then counted as
// owed; owed credits ride on the next message of either kind.
//
// A credit-only message goes out when credits are owed and either half the
// depth is owed or the peer is down to a quarter of its credits (as in the
// TCP provider), and, in addition, when the previous credit-only message
// has been acknowledged: the receiver reposts the reserve buffer as soon as
// it has read the message, then counts it in the acked field of whatever
// it sends next. So at most one credit-only message is ever unaccounted
// for, and the receive queue never holds fewer buffers than messages can
// arrive: no receiver-not-ready NAK in a correct run.
//
// Why this cannot deadlock: a side blocked in Send has no credit, so all
// recvDepth of its ordinary messages reached the peer since the peer last
// returned credits. If the peer's application releases any of them, the
// peer owes credits with the blocked side at zero, so a credit-only
// message is due. It is also allowed: the peer's last credit-only message
// returned at least one credit, and the blocked side has sent at least that
// many messages since taking it in, each carrying the acknowledgement
// (a side counts a credit-only message as taken in before it lets the
// credits it brought be used).
// Credit-only messages need no credit, so two sides that have filled each
// other's buffers still return credits to each other. And it cannot spin:
// a credit-only message is sent only for credits of released ordinary
// messages, and receiving one creates no debt of its own (its buffer is
// the reserve, reposted at once). If the application never releases, the
// sender waits: that is the flow control.
//
// The price of the acknowledgement rule: while the peer sends nothing and
// still has credits, credits released after the last credit-only message
// wait for its next message to acknowledge that one. A blocked peer
// always gets them.
//
// # One-sided operations and ordering
//
// PostWrite posts IBV_WR_RDMA_WRITE and PostRead IBV_WR_RDMA_READ from or
// into the local region, to the peer's (address, rkey). Both complete
// through Poll and Wait with the caller's id. The device checks the rkey,
// bounds and access rights: a violation completes the operation with an
// error matching fabric.ErrRegion and fabric.ErrConnClosed, and breaks the
// connection (the queue pair goes to the error state) on both sides.
//
// A target returns results as an RDMA write followed by a send on the same
// queue pair. RC delivers in posting order, so the send's message is
// received only after the written bytes are in place. Write with immediate
// would save the send, but its 32 bits of immediate data cannot carry a
// reply (status, timings, scalar outputs), and it consumes a receive
// buffer all the same; the send costs one more work request on the wire,
// and keeps one message format for every reply. While an RDMA read is in
// flight, later work requests of the connection carry the fence flag, so
// that nothing posted after a read passes it: a read followed by a write
// to the same bytes returns the bytes from before the write.
//
// # Completions and waiting
//
// Each connection has its own completion queue, sized so it cannot
// overflow (send queue depth + recvDepth + 1), and a goroutine that polls
// it in batches of 32. By default it sleeps on the completion channel
// (ibv_req_notify_cq, poll once more, then wait for the channel descriptor
// in Go's network poller and ibv_get_cq_event); with BusyPoll it spins.
// Every work request is signalled, and posting waits while
// Options.SendQueueDepth work requests are in flight.
//
// # Failures
//
// A disconnect by the peer (RDMA_CM_EVENT_DISCONNECTED), a work request
// that completes in error, a protocol violation, or Close breaks the
// connection: Done closes, Err and every later call return an error
// wrapping fabric.ErrConnClosed, the queue pair is disconnected and moved
// to the error state, and every operation in flight completes, with the
// flush error if the device did not finish it. Messages received before
// the break are still returned by Recv. Once the device has flushed
// everything (or after three seconds), the poller frees the queue pair,
// queues, channels, rdma_cm id and buffers; receive buffers still held by
// the application stay mapped until released. A listener keeps accepting
// when one of its connections breaks.
//
// # Limits
//
//   - One device per Transport (see Devices).
//   - Every connection has its own completion queue, channel and three
//     goroutines; no shared receive queue. That suits tens of
//     connections, not thousands.
//   - Send copies the message into a registered send buffer; no inline
//     sends, no zero-copy sends.
//   - Any connection of a Transport can reach every region registered on
//     it with remote access (one protection domain); rkeys are the
//     device's, not random.
//   - IPv6 addresses with zones are not supported.
package rdma
