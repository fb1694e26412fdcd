package tcp

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/ferry-fabric/ferry/fabric"
)

// Options configure a Transport.
type Options struct {
	// Logger receives connection events and protocol violations. Nil
	// discards them.
	Logger *slog.Logger
}

// Transport is the TCP provider of fabric.Transport. Its regions may be
// reached by every connection it made, like one RDMA protection domain.
type Transport struct {
	log *slog.Logger

	mu        sync.RWMutex
	regions   map[uint32]*region
	conns     map[*conn]struct{}
	listeners map[*listener]struct{}
	closed    bool
}

var _ fabric.Transport = (*Transport)(nil)

// handshakeTimeout bounds connection set-up when the caller's context has
// no deadline, and always on the accepting side.
var handshakeTimeout = 5 * time.Second

// New returns a Transport with no regions and no connections.
func New(opts Options) *Transport {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Transport{
		log:       log,
		regions:   make(map[uint32]*region),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[*listener]struct{}),
	}
}

// Name returns "tcp".
func (t *Transport) Name() string { return "tcp" }

var errTransportClosed = errors.New("transport closed")

// Register makes buf reachable by one-sided operations: locally by this
// transport's connections, and by peers as the access rights allow. The
// key is random so that a peer cannot guess another region's.
func (t *Transport) Register(buf []byte, access fabric.Access) (fabric.MemoryRegion, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("register: empty buffer: %w", fabric.ErrRegion)
	}
	if uint64(len(buf)) > math.MaxUint32 {
		return nil, fmt.Errorf("register: %d bytes, at most %d: %w",
			len(buf), uint32(math.MaxUint32), fabric.ErrRegion)
	}
	r := &region{t: t, buf: buf, access: access, addr: uint64(uintptr(unsafe.Pointer(&buf[0])))}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("register: %w", errTransportClosed)
	}
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("register: draw key: %w", err)
		}
		k := binary.LittleEndian.Uint32(b[:])
		if _, taken := t.regions[k]; k != 0 && !taken {
			r.key = k
			break
		}
	}
	t.regions[r.key] = r
	return r, nil
}

// lookup finds the region a peer names and checks that [addr, addr+n) lies
// inside it and that the peer has the right want.
func (t *Transport) lookup(key uint32, addr uint64, n uint32, want fabric.Access) ([]byte, error) {
	t.mu.RLock()
	r := t.regions[key]
	t.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("unknown key %#x: %w", key, fabric.ErrRegion)
	}
	if r.access&want == 0 {
		return nil, fmt.Errorf("key %#x has %s, needs %s: %w",
			key, r.access, want, fabric.ErrRegion)
	}
	size := uint64(len(r.buf))
	if addr < r.addr || addr-r.addr > size || uint64(n) > size-(addr-r.addr) {
		return nil, fmt.Errorf("%d bytes at %#x outside key %#x [%#x, +%d): %w",
			n, addr, key, r.addr, size, fabric.ErrRegion)
	}
	off := addr - r.addr
	return r.buf[off : off+uint64(n) : off+uint64(n)], nil
}

// Listen binds addr and accepts connections in the background; each is
// handed to Accept once its handshake is done.
func (t *Transport) Listen(addr string, opts fabric.ConnOptions) (fabric.Listener, error) {
	opts, err := checkOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}

	l := newListener(t, ln, opts)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, errTransportClosed)
	}
	t.listeners[l] = struct{}{}
	t.mu.Unlock()

	l.start()
	return l, nil
}

// Dial connects to addr ("host:port") and runs the handshake, both within
// ctx.
func (t *Transport) Dial(ctx context.Context, addr string,
	opts fabric.ConnOptions) (fabric.Conn, error) {
	opts, err := checkOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c, err := t.setUp(ctx, nc.(*net.TCPConn), opts)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}

// Close closes every listener and connection of t and deregisters its
// regions.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	ls := make([]*listener, 0, len(t.listeners))
	for l := range t.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		cs = append(cs, c)
	}
	clear(t.regions)
	t.mu.Unlock()

	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.Close()
	}
	return nil
}

func checkOptions(o fabric.ConnOptions) (fabric.ConnOptions, error) {
	o = o.WithDefaults()
	if o.RecvDepth > maxRecvDepth {
		return o, fmt.Errorf("receive depth %d over %d", o.RecvDepth, maxRecvDepth)
	}
	if o.MaxMessage > maxMaxMessage {
		return o, fmt.Errorf("max message %d over %d", o.MaxMessage, maxMaxMessage)
	}
	return o, nil
}

// setUp runs the handshake on nc and starts the connection. It closes nc
// on failure.
func (t *Transport) setUp(ctx context.Context, nc *net.TCPConn,
	opts fabric.ConnOptions) (*conn, error) {
	peer, err := handshake(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := newConn(t, nc, opts, peer)

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return nil, errTransportClosed
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()

	c.start()
	t.log.Debug("tcp: connected", "local", c.LocalAddr(), "peer", c.RemoteAddr(),
		"max_message", c.maxMessage, "send_credits", peer.RecvDepth)
	return c, nil
}

func (t *Transport) forget(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// handshake exchanges hellos within ctx, or handshakeTimeout when ctx has
// no deadline.
func handshake(ctx context.Context, nc *net.TCPConn, opts fabric.ConnOptions) (hello, error) {
	if err := nc.SetNoDelay(true); err != nil {
		return hello{}, fmt.Errorf("set nodelay: %w", err)
	}
	deadline, hasDeadline := ctx.Deadline()
	if !hasDeadline {
		deadline = time.Now().Add(handshakeTimeout)
	}
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })

	var out, in [helloSize]byte
	hello{RecvDepth: uint32(opts.RecvDepth), MaxMessage: uint32(opts.MaxMessage)}.put(out[:])
	_, werr := nc.Write(out[:])
	_, rerr := io.ReadFull(nc, in[:])

	stop()
	if err := cmp.Or(werr, rerr); err != nil {
		// The socket deadline is the context's: report it as the context's.
		if errors.Is(err, os.ErrDeadlineExceeded) && hasDeadline || ctx.Err() != nil {
			return hello{}, fmt.Errorf("handshake: %w", cmp.Or(ctx.Err(), context.DeadlineExceeded))
		}
		if werr != nil {
			return hello{}, fmt.Errorf("handshake: send hello: %w", werr)
		}
		return hello{}, fmt.Errorf("handshake: read hello: %w", rerr)
	}
	peer, err := decodeHello(in[:])
	if err != nil {
		return hello{}, fmt.Errorf("handshake: %w", err)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return hello{}, fmt.Errorf("handshake: clear deadline: %w", err)
	}
	return peer, nil
}

// region is a registered buffer.
type region struct {
	t      *Transport
	buf    []byte
	addr   uint64
	key    uint32
	access fabric.Access
	once   sync.Once
}

func (r *region) Bytes() []byte { return r.buf }

func (r *region) Remote() fabric.RemoteRegion {
	return fabric.RemoteRegion{Addr: r.addr, Key: r.key, Len: uint32(len(r.buf))}
}

func (r *region) Access() fabric.Access { return r.access }

// Close deregisters r: later accesses by peers, and later posts naming it
// locally, fail.
func (r *region) Close() error {
	r.once.Do(func() {
		r.t.mu.Lock()
		if r.t.regions[r.key] == r {
			delete(r.t.regions, r.key)
		}
		r.t.mu.Unlock()
	})
	return nil
}

// local checks that mr is a live region of t and that [off, off+n) lies in
// it, and returns that slice.
func (t *Transport) local(mr fabric.MemoryRegion, off, n int) ([]byte, error) {
	r, ok := mr.(*region)
	if !ok || r.t != t {
		return nil, fmt.Errorf("local region not registered with this transport: %w",
			fabric.ErrRegion)
	}
	t.mu.RLock()
	live := t.regions[r.key] == r
	t.mu.RUnlock()
	if !live {
		return nil, fmt.Errorf("local region %#x deregistered: %w", r.key, fabric.ErrRegion)
	}
	if off < 0 || n < 0 || off > len(r.buf) || n > len(r.buf)-off {
		return nil, fmt.Errorf("local [%d, +%d) outside region of %d bytes: %w",
			off, n, len(r.buf), fabric.ErrRegion)
	}
	return r.buf[off : off+n : off+n], nil
}
