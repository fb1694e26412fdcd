package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ferry-fabric/ferry/fabric"
)

// maxOutstandingReads bounds the read requests a side may have unanswered
// on one connection: RDMA's initiator depth. A requester waits for a slot
// before sending; a responder treats one more as a protocol violation, so
// a peer cannot make it queue without bound.
const maxOutstandingReads = 256

var errLocalClose = errors.New("closed locally")

// conn is one connection. Three kinds of goroutine touch it: callers
// posting (Send, PostWrite, PostRead, serialised on wmu while they write
// to the socket), the reader, which alone reads the socket and never
// blocks on a write, and the control goroutine, which writes what the
// reader asks for: read responses and credit returns.
type conn struct {
	t          *Transport
	nc         *net.TCPConn
	log        *slog.Logger
	localAddr  string
	remoteAddr string
	maxMessage int
	depth      int
	credits    *fabric.Credits

	// wmu serialises frames on the stream; the fields below it are used
	// only with it held.
	wmu   sync.Mutex
	whdr  [headerSize]byte
	wvec  [2][]byte
	wbufs net.Buffers
	// readTag numbers read requests; responses must come back in order.
	readTag uint64

	// mu guards the state below.
	mu       sync.Mutex
	err      error
	reads    fifo[pendingRead]
	resps    fifo[pendingResp]
	respSeq  uint64 // sequence number of the next response queued
	respSent uint64 // responses written so far
	// respWake is closed when respSent moves and respWaiters is set.
	respWake    chan struct{}
	respWaiters bool
	// owed is the credits released but not yet returned to the peer;
	// outstanding is the messages received whose credit is not yet
	// returned, so the peer believes it has depth-outstanding credits.
	owed        int
	outstanding int
	// unacked is the messages sent whose credit the peer has not returned.
	unacked int

	rhdr      [headerSize]byte
	free      chan *message
	recvq     chan *message
	readSlots chan struct{}
	cq        *fabric.CompletionQueue
	ctlWake   chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
}

var _ fabric.Conn = (*conn)(nil)

type pendingRead struct {
	tag uint64
	id  uint64
	dst []byte
}

type pendingResp struct {
	seq  uint64
	tag  uint64
	addr uint64
	src  []byte
}

// fifo is a queue that reuses its backing array once drained.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int  { return len(q.items) - q.head }
func (q *fifo[T]) push(v T)  { q.items = append(q.items, v) }
func (q *fifo[T]) front() *T { return &q.items[q.head] }
func (q *fifo[T]) rest() []T { return q.items[q.head:] }
func (q *fifo[T]) reset()    { clear(q.items); q.items, q.head = q.items[:0], 0 }
func (q *fifo[T]) pop() (v T) {
	v = q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return v
}

func newConn(t *Transport, nc *net.TCPConn, opts fabric.ConnOptions, peer hello) *conn {
	c := &conn{
		t:          t,
		nc:         nc,
		localAddr:  nc.LocalAddr().String(),
		remoteAddr: nc.RemoteAddr().String(),
		maxMessage: min(opts.MaxMessage, int(peer.MaxMessage)),
		depth:      opts.RecvDepth,
		credits:    fabric.NewCredits(int(peer.RecvDepth)),
		free:       make(chan *message, opts.RecvDepth),
		recvq:      make(chan *message, opts.RecvDepth),
		readSlots:  make(chan struct{}, maxOutstandingReads),
		cq:         fabric.NewCompletionQueue(),
		ctlWake:    make(chan struct{}, 1),
		respWake:   make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.log = t.log.With("peer", c.remoteAddr)

	// Post the receive buffers: one allocation for all of them.
	mem := make([]byte, c.depth*c.maxMessage)
	for i := range c.depth {
		b := mem[i*c.maxMessage : (i+1)*c.maxMessage : (i+1)*c.maxMessage]
		c.free <- &message{c: c, buf: b}
	}
	return c
}

func (c *conn) start() {
	c.wg.Add(2)
	go c.readLoop()
	go c.ctlLoop()
}

func (c *conn) Credits() int       { return c.credits.Available() }
func (c *conn) MaxMessage() int    { return c.maxMessage }
func (c *conn) LocalAddr() string  { return c.localAddr }
func (c *conn) RemoteAddr() string { return c.remoteAddr }
func (c *conn) Done() <-chan struct{} {
	return c.done
}

func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close breaks the connection, completes what is in flight with errors
// and waits for the connection's goroutines. It is idempotent.
func (c *conn) Close() error {
	c.fail(errLocalClose)
	c.wg.Wait()
	return nil
}

// fail breaks the connection for cause; the first cause wins.
func (c *conn) fail(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = fmt.Errorf("%w: %w", fabric.ErrConnClosed, cause)

	err := c.err
	// Reads waiting for a response complete now; the one the reader is
	// filling, if any, is completed by the reader.
	reads := c.reads.rest()
	c.reads = fifo[pendingRead]{}
	c.resps.reset()
	c.mu.Unlock()

	// Close the queue before done, so that a post after done fails.
	c.cq.Close(err)
	for _, r := range reads {
		c.completeRead(r, err)
	}
	close(c.done)
	c.nc.Close()
	c.credits.Close(err)
	c.t.forget(c)
	if errors.Is(cause, errLocalClose) {
		c.log.Debug("tcp: connection closed")
	} else {
		c.log.Debug("tcp: connection broken", "err", cause)
	}
}

// violation logs a peer's breach of the protocol and returns the error
// the connection is closed with.
func (c *conn) violation(err error) error {
	if !errors.Is(err, ErrProtocol) {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	c.log.Warn("tcp: closing connection on protocol violation", "err", err)
	return fmt.Errorf("peer %s: %w", c.remoteAddr, err)
}

// writeFrame writes h and payload as one frame, returning any credits
// owed to the peer on it. The caller holds wmu.
func (c *conn) writeFrame(h header, payload []byte) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	h.Credits = uint32(c.owed)
	c.outstanding -= c.owed
	c.owed = 0
	if h.Type == frameSend {
		c.unacked++
	}
	c.mu.Unlock()

	h.put(c.whdr[:])
	var err error
	if len(payload) == 0 {
		_, err = c.nc.Write(c.whdr[:])
	} else {
		// One writev for header and payload: the payload is not copied.
		c.wvec[0], c.wvec[1] = c.whdr[:], payload
		c.wbufs = c.wvec[:]
		_, err = c.wbufs.WriteTo(c.nc)
		c.wvec[1] = nil
	}
	if err != nil {
		return fmt.Errorf("write %s frame: %w", h.Type, err)
	}
	return nil
}

// creditFlushDue says whether owed credits should go out in a frame of
// their own rather than wait for one to ride on: when half the depth is
// owed, or when the peer is down to a quarter of its credits. The caller
// holds mu.
func (c *conn) creditFlushDue() bool {
	return c.owed > 0 && (c.owed >= max(1, c.depth/2) || c.depth-c.outstanding <= c.depth/4)
}

func (c *conn) kickCtl() {
	select {
	case c.ctlWake <- struct{}{}:
	default:
	}
}

// Send implements fabric.Conn.
func (c *conn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > c.maxMessage {
		return fmt.Errorf("send %d bytes, max %d: %w",
			len(msg), c.maxMessage, fabric.ErrMessageTooLarge)
	}
	if err := c.credits.Take(ctx); err != nil {
		return fmt.Errorf("send: %w", err)
	}

	c.wmu.Lock()
	err := c.writeFrame(header{Type: frameSend, Length: uint32(len(msg))}, msg)
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return fmt.Errorf("send: %w", c.Err())
	}
	return nil
}

// Recv implements fabric.Conn. Messages that arrived before the
// connection broke are still returned, then the error.
func (c *conn) Recv(ctx context.Context) (fabric.Message, error) {
	select {
	case m := <-c.recvq:
		return m, nil
	default:
	}
	select {
	case m := <-c.recvq:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		select {
		case m := <-c.recvq:
			return m, nil
		default:
			return nil, fmt.Errorf("recv: %w", c.Err())
		}
	}
}

// PostWrite implements fabric.Conn. It returns once the bytes are handed
// to the socket, which may wait while the socket's buffer is full; the
// completion is queued then.
func (c *conn) PostWrite(id uint64, local fabric.MemoryRegion, off, n int,
	remote fabric.RemoteRegion, remoteOff uint64) error {
	src, err := c.t.local(local, off, n)
	if err != nil {
		return fmt.Errorf("post write: %w", err)
	}
	dst, ok := remote.Slice(remoteOff, uint64(n))
	if !ok {
		return fmt.Errorf("post write: remote [%d, +%d) outside region of %d bytes: %w",
			remoteOff, n, remote.Len, fabric.ErrRegion)
	}
	if err := c.cq.Begin(); err != nil {
		return fmt.Errorf("post write: %w", err)
	}

	c.wmu.Lock()
	h := header{Type: frameWrite, Length: uint32(n), Key: dst.Key, Addr: dst.Addr}
	err = c.writeFrame(h, src)
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		err = c.Err()
	}
	c.cq.Complete(fabric.Completion{ID: id, Verb: fabric.VerbWrite, Len: n, Err: err})
	return nil
}

// PostRead implements fabric.Conn. It waits while maxOutstandingReads
// reads are unanswered.
func (c *conn) PostRead(id uint64, local fabric.MemoryRegion, off, n int,
	remote fabric.RemoteRegion, remoteOff uint64) error {
	dst, err := c.t.local(local, off, n)
	if err != nil {
		return fmt.Errorf("post read: %w", err)
	}
	if local.Access()&fabric.AccessLocalWrite == 0 {
		return fmt.Errorf("post read: destination lacks %s: %w",
			fabric.AccessLocalWrite, fabric.ErrRegion)
	}
	src, ok := remote.Slice(remoteOff, uint64(n))
	if !ok {
		return fmt.Errorf("post read: remote [%d, +%d) outside region of %d bytes: %w",
			remoteOff, n, remote.Len, fabric.ErrRegion)
	}

	select {
	case c.readSlots <- struct{}{}:
	case <-c.done:
		return fmt.Errorf("post read: %w", c.Err())
	}
	if err := c.cq.Begin(); err != nil {
		<-c.readSlots
		return fmt.Errorf("post read: %w", err)
	}

	// Queue the read before its request goes out, under wmu so that the
	// queue is in stream order. If the connection broke, fail has drained
	// the queue or will, completing this read.
	c.wmu.Lock()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		c.wmu.Unlock()
		c.completeRead(pendingRead{id: id, dst: dst}, c.Err())
		return nil
	}
	tag := c.readTag
	c.readTag++
	c.reads.push(pendingRead{tag: tag, id: id, dst: dst})
	c.mu.Unlock()
	h := header{Type: frameReadReq, Length: uint32(n), Key: src.Key, Addr: src.Addr, ID: tag}
	err = c.writeFrame(h, nil)
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
	return nil
}

func (c *conn) completeRead(r pendingRead, err error) {
	c.cq.Complete(fabric.Completion{ID: r.id, Verb: fabric.VerbRead, Len: len(r.dst), Err: err})
	<-c.readSlots
}

// Poll implements fabric.Conn.
func (c *conn) Poll(cs []fabric.Completion) int { return c.cq.Poll(cs) }

// Wait implements fabric.Conn. Once the connection is broken it returns
// the remaining completions, then the connection's error.
func (c *conn) Wait(ctx context.Context, cs []fabric.Completion) (int, error) {
	return c.cq.Wait(ctx, cs)
}

// message is a posted receive buffer holding a received message.
type message struct {
	c    *conn
	buf  []byte
	n    int
	held atomic.Bool
}

func (m *message) Bytes() []byte { return m.buf[:m.n:m.n] }

// Release reposts the buffer and returns its credit. A second Release
// before the buffer is reused is ignored; after that it is a caller bug
// (see fabric.Message).
func (m *message) Release() {
	if !m.held.CompareAndSwap(true, false) {
		return
	}
	c := m.c
	c.free <- m

	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.owed++
	due := c.creditFlushDue()
	c.mu.Unlock()
	if due {
		c.kickCtl()
	}
}
