// Package tcp is the TCP provider of fabric.Transport: RDMA semantics
// (registered regions, one-sided writes and reads, two-sided messages
// under credit flow control) carried over one TCP stream per connection.
// It needs nothing from the kernel but sockets, and exists so that Ferry
// runs and is tested on machines without an RDMA device.
//
// # Connection set-up
//
// Each side writes a 16-byte hello and reads the peer's, within the
// caller's context (Dial) or five seconds (Listen):
//
//	0  magic       u32  0x46525954
//	4  version     u16  1
//	6  reserved    u16  zero
//	8  recvDepth   u32  receive buffers this side posts, 1..65536
//	12 maxMessage  u32  largest message it accepts, 512..16 MiB
//
// Both use the smaller maxMessage; each side's send credits start at the
// peer's recvDepth. Anything else closes the connection with ErrHandshake.
//
// # Frames
//
// After the hello the stream is a sequence of frames, a 32-byte header,
// little endian, then the payload:
//
//	0  type     u8   1 send, 2 write, 3 read-req, 4 read-resp, 5 credit
//	1  flags    u8   zero
//	2  reserved u16  zero
//	4  credits  u32  send credits returned to the receiver of the frame
//	8  length   u32  payload bytes; for read-req the bytes asked for
//	12 key      u32  write, read-req: the target region's key
//	16 addr     u64  write, read-req: the target address in that region
//	24 id       u64  read-req, read-resp: the requester's tag
//
// A send carries a message into a posted receive buffer; a write carries
// bytes into a region; a read-req asks for bytes of a region and a
// read-resp brings them back, in the order the requests were made; a
// credit frame only returns credits. Fields a type does not use must be
// zero. Any frame may return credits; a receiver sends a credit frame of
// its own only when half its depth is owed or the peer is down to a
// quarter of its credits.
//
// # Guarantees, and where they differ from RDMA
//
// Frames of a connection go out in posting order, so a message sent after
// a write is received only once the write's bytes are in place. Payloads
// move between the socket and registered memory with no copy in user
// space: read(2) into the region, writev(2) out of it. A write completes
// once its bytes are handed to the socket, a read once its bytes have
// landed.
//
// A peer that breaks the protocol (an unknown key, bytes outside a
// region, a missing access right, a send without a credit, a malformed
// or absurd header) gets its connection closed, as an RDMA queue pair
// goes to the error state; the error wraps ErrProtocol, and fabric.ErrRegion
// for region checks, and is logged at Warn with the peer address.
//
// Unlike RDMA:
//   - One-sided operations involve the peer's transport goroutines (they
//     read into and write from its memory), though never its application
//     code.
//   - PostWrite, PostRead and Send write to the socket from the caller's
//     goroutine, so they wait while the socket buffer is full instead of
//     failing with a full send queue. PostRead also waits while 256 reads
//     are unanswered, the analogue of the initiator depth.
//   - Any connection of a Transport can reach every region registered on
//     it with remote access, as with one RDMA protection domain; scoping
//     regions to connections is open work.
//   - Region keys are random 32-bit values from crypto/rand; the address
//     is the buffer's real address. Both are checked on every access, but
//     a peer on the connection sees plain TCP: there is no encryption and
//     no authentication of the peer.
//   - There is no write timeout: a peer that stops reading stalls posting
//     on that connection until it is closed.
package tcp
