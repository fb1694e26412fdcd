package fabric

import (
	"context"
	"errors"
	"fmt"
)

// Access says what may be done to a registered memory region. Local write
// is needed for a region that one-sided reads or incoming data land in.
type Access uint8

const (
	AccessLocalWrite Access = 1 << iota
	AccessRemoteRead
	AccessRemoteWrite
)

func (a Access) String() string {
	s := ""
	for _, f := range []struct {
		bit  Access
		name string
	}{{AccessLocalWrite, "local-write"}, {AccessRemoteRead, "remote-read"}, {AccessRemoteWrite, "remote-write"}} {
		if a&f.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += f.name
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// RemoteRegion describes a registered region to a peer: what an RDMA
// application sends as (virtual address, rkey, length). Addr is opaque to
// the peer; it is only ever handed back to the owner's transport.
type RemoteRegion struct {
	Addr uint64
	Key  uint32
	Len  uint32
}

// Slice returns the sub-region [off, off+n) of r, or false when it does not
// fit inside r.
func (r RemoteRegion) Slice(off, n uint64) (RemoteRegion, bool) {
	if off > uint64(r.Len) || n > uint64(r.Len)-off {
		return RemoteRegion{}, false
	}
	return RemoteRegion{Addr: r.Addr + off, Key: r.Key, Len: uint32(n)}, true
}

// IsZero reports whether r describes nothing.
func (r RemoteRegion) IsZero() bool { return r == RemoteRegion{} }

// MemoryRegion is memory registered with a Transport. The transport may
// read and write Bytes() at any time while an operation that names the
// region is in flight, so the owner must not reuse that memory until the
// operation's completion has been seen. The slice must stay valid until
// Close returns; a provider never copies it.
type MemoryRegion interface {
	Bytes() []byte
	// Remote describes the whole region to a peer.
	Remote() RemoteRegion
	Access() Access
	// Close deregisters the region. Operations still naming it fail.
	Close() error
}

// Transport is one provider instance: the analogue of an opened RDMA
// device with one protection domain. Regions registered with it may be
// used on every connection it made.
type Transport interface {
	// Name is the address scheme it serves, for example "tcp" or "rdma".
	Name() string
	Register(buf []byte, access Access) (MemoryRegion, error)
	Listen(addr string, opts ConnOptions) (Listener, error)
	Dial(ctx context.Context, addr string, opts ConnOptions) (Conn, error)
	Close() error
}

// Listener accepts connections for a target.
type Listener interface {
	Accept(ctx context.Context) (Conn, error)
	// Addr is the bound address in the form Dial accepts (host:port).
	Addr() string
	Close() error
}

// ConnOptions set the resources of one connection. Zero fields take the
// defaults below.
type ConnOptions struct {
	// RecvDepth is the number of receive buffers this side posts, and so
	// the number of send credits its peer starts with.
	RecvDepth int
	// MaxMessage is the largest two-sided message, in bytes. The two sides
	// agree on the smaller of their values at connection set-up.
	MaxMessage int
	// BusyPoll asks the provider to spin on its completion queue rather
	// than sleep on a completion channel, for latency. Providers without
	// such a choice ignore it.
	BusyPoll bool
}

const (
	DefaultRecvDepth  = 64
	DefaultMaxMessage = 4096
	// MinMaxMessage is the smallest message size a provider must accept:
	// every request and response of the wire protocol but a failed
	// verification log fits in it.
	MinMaxMessage = 512
)

// WithDefaults returns o with zero fields replaced by the defaults.
func (o ConnOptions) WithDefaults() ConnOptions {
	if o.RecvDepth <= 0 {
		o.RecvDepth = DefaultRecvDepth
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.MaxMessage < MinMaxMessage {
		o.MaxMessage = MinMaxMessage
	}
	return o
}

// Verb names a one-sided operation in a Completion.
type Verb uint8

const (
	VerbWrite Verb = iota + 1
	VerbRead
)

func (k Verb) String() string {
	switch k {
	case VerbWrite:
		return "write"
	case VerbRead:
		return "read"
	}
	return fmt.Sprintf("verb(%d)", uint8(k))
}

// Completion reports the end of a one-sided operation posted on a Conn.
type Completion struct {
	ID   uint64
	Verb Verb
	Len  int
	// Err is nil on success. After a connection breaks, every operation
	// still in flight completes with an error wrapping ErrConnClosed.
	Err error
}

// Message is a received two-sided message. Its bytes live in a posted
// receive buffer; Release reposts the buffer and returns a credit to the
// peer, after which neither Bytes nor Release may be called again: the
// buffer may already hold the next message, which a second Release would
// give away.
type Message interface {
	Bytes() []byte
	Release()
}

// Conn is one reliable, connected endpoint: the analogue of an RDMA RC
// queue pair with its completion queue. All methods are safe for
// concurrent use.
type Conn interface {
	// Send posts a two-sided message of at most MaxMessage bytes. It waits
	// for a send credit when the peer has none posted; msg may be reused as
	// soon as Send returns.
	Send(ctx context.Context, msg []byte) error
	// Recv returns the next message in arrival order.
	Recv(ctx context.Context) (Message, error)

	// PostWrite starts a one-sided write of local.Bytes()[off:off+n] into
	// the peer's region remote at remoteOff. Operations posted on a Conn,
	// writes and sends alike, are delivered to the peer in posting order:
	// a message sent after a write is received only once the write's bytes
	// are in place.
	PostWrite(id uint64, local MemoryRegion, off, n int, remote RemoteRegion, remoteOff uint64) error
	// PostRead starts a one-sided read of n bytes of the peer's region
	// remote at remoteOff into local.Bytes()[off:off+n].
	PostRead(id uint64, local MemoryRegion, off, n int, remote RemoteRegion, remoteOff uint64) error
	// Poll moves up to len(cs) completions into cs without waiting.
	Poll(cs []Completion) int
	// Wait is Poll that waits until at least one completion is there, the
	// connection breaks, or ctx ends.
	Wait(ctx context.Context, cs []Completion) (int, error)

	// Credits is the number of messages that may be sent now without
	// waiting.
	Credits() int
	// MaxMessage is the message size agreed with the peer.
	MaxMessage() int
	LocalAddr() string
	RemoteAddr() string
	// Done is closed once the connection is broken or closed; Err then
	// says why.
	Done() <-chan struct{}
	Err() error
	Close() error
}

var (
	// ErrConnClosed is wrapped by every error caused by a broken or closed
	// connection.
	ErrConnClosed = errors.New("connection closed")
	// ErrMessageTooLarge is returned by Send for a message over MaxMessage.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrRegion is wrapped by errors about a memory region: unknown key,
	// out of bounds, missing access right.
	ErrRegion = errors.New("memory region")
	// ErrNotSupported is returned where a provider or the machine lacks a
	// capability.
	ErrNotSupported = errors.New("not supported")
)
