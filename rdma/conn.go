package rdma

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
)

var (
	errLocalClose       = errors.New("closed locally")
	errPeerDisconnected = errors.New("peer disconnected")
	errFlushed          = errors.New("work requests flushed")
	errDestroyed        = errors.New("queue pair destroyed")
	errNotDue           = errors.New("credit message not due")
)

// drainTimeout bounds how long a broken connection waits for the device
// to flush its outstanding work requests before its resources go.
const drainTimeout = 3 * time.Second

// recvBit marks the work request id of a receive; the rest is the buffer
// index. Send queue work requests use their slot index.
const recvBit = 1 << 63

// pollBatch is how many completions one ibv_poll_cq call takes.
const pollBatch = 32

type wrKind uint8

const (
	wrFree wrKind = iota
	wrSend
	wrCredit
	wrWrite
	wrRead
)

// wrSlot is what the poller needs to know about a send queue work request
// when it completes.
type wrSlot struct {
	kind wrKind
	id   uint64
	n    int
	buf  int
}

// conn is one RC queue pair with its own completion queue, completion
// channel and rdma_cm event channel. Three goroutines serve it: the
// poller, which alone polls the completion queue and, once the connection
// is broken and drained, frees everything; the cm goroutine, which waits
// for rdma_cm events (a peer's disconnect); and the ctl goroutine, which
// posts credit-only messages.
type conn struct {
	t    *Transport
	log  *slog.Logger
	id   *cgo.CMID
	ech  *cgo.EventChannel
	ecw  *fdWaiter
	cch  *cgo.CompChannel
	ccw  *fdWaiter
	cq   *cgo.CQ
	busy bool

	localAddr, remoteAddr string
	depth                 int // receive buffers of ordinary messages
	ownMax                int // the payload our receive buffers hold
	maxMessage            int // the agreed size
	peerDepth             int
	sqDepth               int
	credits               *fabric.Credits

	recvMem  []byte
	recvMR   *cgo.MR
	recvSize int
	msgs     []message
	sendMem  []byte
	sendMR   *cgo.MR
	sendSize int
	sendBufs chan int
	sqSlots  chan int

	recvq   chan *message
	comps   *fabric.CompletionQueue
	ctlWake chan struct{}
	done    chan struct{}
	cmDone  chan struct{}
	// reaped is closed when the poller has taken every completion the
	// device will give: no message can arrive after it.
	reaped chan struct{}
	wg     sync.WaitGroup

	// life guards the queue pair against use while it is destroyed:
	// posting holds it for reading.
	life      sync.RWMutex
	destroyed bool

	// mu guards the state below.
	mu       sync.Mutex
	err      error
	failedAt time.Time
	slots    []wrSlot
	sqUsed   int
	// reads counts RDMA reads in flight: while there are any, later work
	// requests are fenced so that they do not pass them.
	reads int
	// owed is the receive buffers reposted but not yet returned to the
	// peer; outstanding is the ordinary messages received whose buffer
	// the peer has not been given back (held by the application, or
	// owed); unacked is the messages sent whose buffer has not come back.
	owed        int
	outstanding int
	unacked     int
	// cmSent counts credit-only messages sent, peerAck the ones the peer
	// says it has taken in, cmRecv those taken in from the peer.
	cmSent, peerAck, cmRecv uint16
	recvPosted              int
	held                    int
	recvFreed               bool
	// torn is set once destroy has run.
	torn bool
}

var _ fabric.Conn = (*conn)(nil)

// message is a receive buffer holding a received message.
type message struct {
	c    *conn
	idx  int
	buf  []byte
	n    int
	held atomic.Bool
}

func (m *message) Bytes() []byte { return m.buf[headerSize : headerSize+m.n : headerSize+m.n] }

// newConn builds the queue pair of id with its completion queue and posts
// the receive buffers: all that must exist before connect or accept. On
// failure everything it made, id and ech included, is gone.
func (t *Transport) newConn(id *cgo.CMID, ech *cgo.EventChannel, ecw *fdWaiter,
	opts fabric.ConnOptions) (*conn, error) {
	c := &conn{
		t:        t,
		id:       id,
		ech:      ech,
		ecw:      ecw,
		busy:     t.busy || opts.BusyPoll,
		depth:    opts.RecvDepth,
		ownMax:   opts.MaxMessage,
		sqDepth:  t.sqDepth,
		recvSize: opts.MaxMessage + headerSize,
		recvq:    make(chan *message, opts.RecvDepth),
		comps:    fabric.NewCompletionQueue(),
		ctlWake:  make(chan struct{}, 1),
		done:     make(chan struct{}),
		cmDone:   make(chan struct{}),
		reaped:   make(chan struct{}),
		slots:    make([]wrSlot, t.sqDepth),
		sqSlots:  make(chan int, t.sqDepth),
	}
	for i := range t.sqDepth {
		c.sqSlots <- i
	}
	if err := c.build(); err != nil {
		c.destroy()
		return nil, err
	}
	return c, nil
}

func (c *conn) build() error {
	var err error
	if c.cch, err = c.t.dev.CreateCompChannel(); err != nil {
		return err
	}
	if c.ccw, err = newFDWaiter(c.cch.Fd(), "completion channel"); err != nil {
		return err
	}
	// One entry per send queue slot and per receive buffer: the queue
	// cannot overflow.
	if c.cq, err = c.t.dev.CreateCQ(c.sqDepth+c.depth+1, c.cch, pollBatch); err != nil {
		return err
	}
	caps := cgo.QPCaps{MaxSendWR: c.sqDepth, MaxRecvWR: c.depth + 1, MaxSendSGE: 1, MaxRecvSGE: 1}
	if err = c.id.CreateQP(c.t.pd, c.cq, c.cq, caps); err != nil {
		return err
	}

	// depth buffers for ordinary messages and one in reserve for
	// credit-only messages (see doc.go).
	n := c.depth + 1
	if c.recvMem, err = mapAnon(n * c.recvSize); err != nil {
		return fmt.Errorf("map receive buffers: %w", err)
	}
	c.recvMR, err = c.t.pd.RegMR(addrOf(c.recvMem), len(c.recvMem), cgo.AccessLocalWrite)
	if err != nil {
		return fmt.Errorf("register receive buffers: %w", c.t.memlockHint(err))
	}
	c.msgs = make([]message, n)
	for i := range c.msgs {
		b := c.recvMem[i*c.recvSize : (i+1)*c.recvSize : (i+1)*c.recvSize]
		c.msgs[i] = message{c: c, idx: i, buf: b}
		if err := c.postRecv(i); err != nil {
			return err
		}
		c.recvPosted++
	}
	return nil
}

// finish sizes what depends on the peer's hello: send credits, send
// buffers, the agreed message size.
func (c *conn) finish(peer hello) error {
	c.maxMessage = min(c.ownMax, int(peer.MaxMessage))
	c.peerDepth = int(peer.RecvDepth)
	c.credits = fabric.NewCredits(c.peerDepth)
	c.localAddr = c.id.LocalAddr().String()
	c.remoteAddr = c.id.PeerAddr().String()
	c.log = c.t.log.With("peer", c.remoteAddr)

	// Ordinary messages are bounded by credits and credit-only ones by
	// acknowledgements; a buffer is freed by its send completion, which
	// may trail the credit's return, so posting may wait for one briefly.
	n := min(c.peerDepth+2, c.sqDepth, 130)
	c.sendSize = c.maxMessage + headerSize
	var err error
	if c.sendMem, err = mapAnon(n * c.sendSize); err != nil {
		return fmt.Errorf("map send buffers: %w", err)
	}
	if c.sendMR, err = c.t.pd.RegMR(addrOf(c.sendMem), len(c.sendMem), 0); err != nil {
		return fmt.Errorf("register send buffers: %w", c.t.memlockHint(err))
	}
	c.sendBufs = make(chan int, n)
	for i := range n {
		c.sendBufs <- i
	}
	return nil
}

func (c *conn) start() {
	c.wg.Add(3)
	go c.pollLoop()
	go c.cmLoop()
	go c.ctlLoop()
	c.log.Debug("rdma: connected", "local", c.localAddr, "max_message", c.maxMessage,
		"send_credits", c.peerDepth, "qp", c.id.QPNum(), "busy_poll", c.busy)
}

func mapAnon(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

func (c *conn) Credits() int          { return c.credits.Available() }
func (c *conn) MaxMessage() int       { return c.maxMessage }
func (c *conn) LocalAddr() string     { return c.localAddr }
func (c *conn) RemoteAddr() string    { return c.remoteAddr }
func (c *conn) Done() <-chan struct{} { return c.done }

func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close breaks the connection, completes what is in flight with errors,
// waits for the connection's goroutines and frees its resources. It is
// idempotent.
func (c *conn) Close() error {
	c.fail(errLocalClose)
	c.wg.Wait()
	return nil
}

// fail breaks the connection for cause; the first cause wins. The queue
// pair goes to the error state, so that the device flushes every work
// request, and the poller frees everything once they are all back.
func (c *conn) fail(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = fmt.Errorf("%w: %w", fabric.ErrConnClosed, cause)
	c.failedAt = time.Now()
	c.mu.Unlock()

	// Close the queue before done, so that a post after done fails.
	c.comps.Close(c.err)
	close(c.done)
	if c.credits != nil {
		c.credits.Close(c.err)
	}
	c.withQP(func() error {
		c.id.Disconnect()
		return c.id.QPToError()
	})
	if c.ccw != nil {
		c.ccw.setDeadline(time.Now().Add(drainTimeout))
	}
	c.t.forget(c)
	if c.log == nil {
		return
	}
	if errors.Is(cause, errLocalClose) {
		c.log.Debug("rdma: connection closed")
	} else {
		c.log.Debug("rdma: connection broken", "err", cause)
	}
}

// violation logs a peer's breach of the protocol and returns the error
// the connection is closed with.
func (c *conn) violation(err error) error {
	if !errors.Is(err, ErrProtocol) {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	c.log.Warn("rdma: closing connection on protocol violation", "err", err)
	return fmt.Errorf("peer %s: %w", c.remoteAddr, err)
}

// withQP runs f unless the queue pair is destroyed.
func (c *conn) withQP(f func() error) error {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.destroyed {
		return errDestroyed
	}
	return f()
}

// repost gives receive buffer idx back to the device; the caller has
// counted it in recvPosted already. On failure it undoes the count, fails
// the connection and returns false.
func (c *conn) repost(idx int) bool {
	err := c.withQP(func() error { return c.postRecv(idx) })
	if err == nil {
		return true
	}
	c.mu.Lock()
	c.recvPosted--
	c.mu.Unlock()
	c.fail(err)
	return false
}

func (c *conn) postRecv(i int) error {
	b := c.msgs[i].buf
	return c.id.PostRecv(recvBit|uint64(i), addrOf(b), uint32(len(b)), c.recvMR.LKey())
}

func (c *conn) kickCtl() {
	select {
	case c.ctlWake <- struct{}{}:
	default:
	}
}

// creditDue says whether owed credits should go out in a credit-only
// message rather than wait for a message to ride on: when half the
// depth is owed, or when the peer is down to a quarter of its credits,
// and the peer has taken in our last credit-only message. The caller
// holds mu.
func (c *conn) creditDue() bool {
	return c.owed > 0 && c.cmSent == c.peerAck &&
		(c.owed >= max(1, c.depth/2) || c.depth-c.outstanding <= c.depth/4)
}

func (c *conn) takeSendBuf(ctx context.Context) (int, error) {
	select {
	case b := <-c.sendBufs:
		return b, nil
	default:
	}
	select {
	case b := <-c.sendBufs:
		return b, nil
	case <-c.done:
		return 0, c.Err()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *conn) takeSlot(ctx context.Context) (int, error) {
	select {
	case s := <-c.sqSlots:
		return s, nil
	default:
	}
	select {
	case s := <-c.sqSlots:
		return s, nil
	case <-c.done:
		return 0, c.Err()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// fence is the send flag that keeps a work request behind reads in
// flight. The caller holds mu.
func (c *conn) fence() int {
	if c.reads > 0 {
		return cgo.SendFence
	}
	return 0
}

// postMessage posts send buffer buf, holding n payload bytes, in slot,
// with the header filled in now: the credits owed ride on it. For a
// credit-only message it re-checks that one is due. The slot and buffer
// are given back on failure.
func (c *conn) postMessage(slot, buf, n int, credit bool) error {
	c.mu.Lock()
	err := c.err
	if err == nil && credit && !c.creditDue() {
		err = errNotDue
	}
	if err != nil {
		c.mu.Unlock()
		c.sqSlots <- slot
		c.sendBufs <- buf
		return err
	}
	h := header{Credits: uint32(c.owed), Acked: c.cmRecv}
	c.outstanding -= c.owed
	c.owed = 0
	kind := wrSend
	if credit {
		h.Flags = flagCredit
		kind = wrCredit
		c.cmSent++
	} else {
		c.unacked++
	}
	c.slots[slot] = wrSlot{kind: kind, buf: buf}
	c.sqUsed++
	flags := cgo.SendSignaled | c.fence()
	c.mu.Unlock()

	b := c.sendMem[buf*c.sendSize : buf*c.sendSize+headerSize+n]
	h.put(b)
	err = c.withQP(func() error {
		return c.id.PostSend(uint64(slot), cgo.WRSend, flags, addrOf(b), uint32(len(b)),
			c.sendMR.LKey(), 0, 0, 0)
	})
	if err != nil {
		c.unpost(slot)
		c.sendBufs <- buf
		c.fail(err)
		return c.Err()
	}
	return nil
}

// unpost forgets slot after a failed post.
func (c *conn) unpost(slot int) {
	c.mu.Lock()
	if c.slots[slot].kind == wrRead {
		c.reads--
	}
	c.slots[slot] = wrSlot{}
	c.sqUsed--
	c.mu.Unlock()
	c.sqSlots <- slot
}

// Send implements fabric.Conn: it copies msg behind a header into a
// registered send buffer and posts it.
func (c *conn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > c.maxMessage {
		return fmt.Errorf("send %d bytes, max %d: %w",
			len(msg), c.maxMessage, fabric.ErrMessageTooLarge)
	}
	if err := c.credits.Take(ctx); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	buf, err := c.takeSendBuf(ctx)
	if err != nil {
		c.credits.Add(1)
		return fmt.Errorf("send: %w", err)
	}
	slot, err := c.takeSlot(ctx)
	if err != nil {
		c.sendBufs <- buf
		c.credits.Add(1)
		return fmt.Errorf("send: %w", err)
	}
	copy(c.sendMem[buf*c.sendSize+headerSize:], msg)
	if err := c.postMessage(slot, buf, len(msg), false); err != nil {
		return fmt.Errorf("send: %w", err)
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
		// Completions of messages that arrived before the break may
		// still be in the queue: wait for the poller to take them.
		select {
		case m := <-c.recvq:
			return m, nil
		case <-c.reaped:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case m := <-c.recvq:
			return m, nil
		default:
			return nil, fmt.Errorf("recv: %w", c.Err())
		}
	}
}

// Release reposts the buffer and returns its credit. A second Release
// before the buffer is reused is ignored; after that it is a caller bug
// (see fabric.Message).
func (m *message) Release() {
	if !m.held.CompareAndSwap(true, false) {
		return
	}
	c := m.c
	c.mu.Lock()
	c.held--
	if c.err != nil {
		free := c.torn && c.held == 0 && !c.recvFreed
		if free {
			c.recvFreed = true
		}
		c.mu.Unlock()
		if free {
			unix.Munmap(c.recvMem)
		}
		return
	}
	c.recvPosted++
	c.mu.Unlock()

	// Repost first: the credit may go out only for a posted buffer.
	if !c.repost(m.idx) {
		return
	}
	c.mu.Lock()
	c.owed++
	due := c.creditDue()
	c.mu.Unlock()
	if due {
		c.kickCtl()
	}
}

// postOneSided posts an RDMA write or read once the arguments are checked.
// A failure after begin is reported as a completion, as the TCP provider
// does.
func (c *conn) postOneSided(verb fabric.Verb, id uint64, laddr uintptr, lkey uint32, n int,
	dst fabric.RemoteRegion) error {
	if err := c.comps.Begin(); err != nil {
		return err
	}
	slot, err := c.takeSlot(context.Background())
	if err != nil {
		c.comps.Complete(fabric.Completion{ID: id, Verb: verb, Len: n, Err: err})
		return nil
	}

	kind, opcode := wrWrite, cgo.WRRDMAWrite
	if verb == fabric.VerbRead {
		kind, opcode = wrRead, cgo.WRRDMARead
	}
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		c.sqSlots <- slot
		c.comps.Complete(fabric.Completion{ID: id, Verb: verb, Len: n, Err: err})
		return nil
	}
	flags := cgo.SendSignaled | c.fence()
	if kind == wrRead {
		c.reads++
	}
	c.slots[slot] = wrSlot{kind: kind, id: id, n: n}
	c.sqUsed++
	c.mu.Unlock()

	err = c.withQP(func() error {
		return c.id.PostSend(uint64(slot), opcode, flags, laddr, uint32(n), lkey,
			dst.Addr, dst.Key, 0)
	})
	if err != nil {
		c.unpost(slot)
		c.fail(err)
		c.comps.Complete(fabric.Completion{ID: id, Verb: verb, Len: n, Err: c.Err()})
	}
	return nil
}

// PostWrite implements fabric.Conn with IBV_WR_RDMA_WRITE. It waits while
// the send queue is full.
func (c *conn) PostWrite(id uint64, local fabric.MemoryRegion, off, n int,
	remote fabric.RemoteRegion, remoteOff uint64) error {
	laddr, lkey, err := c.t.local(local, off, n)
	if err != nil {
		return fmt.Errorf("post write: %w", err)
	}
	dst, ok := remote.Slice(remoteOff, uint64(n))
	if !ok {
		return fmt.Errorf("post write: remote [%d, +%d) outside region of %d bytes: %w",
			remoteOff, n, remote.Len, fabric.ErrRegion)
	}
	if err := c.postOneSided(fabric.VerbWrite, id, laddr, lkey, n, dst); err != nil {
		return fmt.Errorf("post write: %w", err)
	}
	return nil
}

// PostRead implements fabric.Conn with IBV_WR_RDMA_READ. It waits while
// the send queue is full; the device holds reads beyond the agreed read
// depth back by itself.
func (c *conn) PostRead(id uint64, local fabric.MemoryRegion, off, n int,
	remote fabric.RemoteRegion, remoteOff uint64) error {
	laddr, lkey, err := c.t.local(local, off, n)
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
	if err := c.postOneSided(fabric.VerbRead, id, laddr, lkey, n, src); err != nil {
		return fmt.Errorf("post read: %w", err)
	}
	return nil
}

// Poll implements fabric.Conn.
func (c *conn) Poll(cs []fabric.Completion) int { return c.comps.Poll(cs) }

// Wait implements fabric.Conn. Once the connection is broken it returns
// the remaining completions, then the connection's error.
func (c *conn) Wait(ctx context.Context, cs []fabric.Completion) (int, error) {
	return c.comps.Wait(ctx, cs)
}

// ctlLoop posts credit-only messages when they are due.
func (c *conn) ctlLoop() {
	defer c.wg.Done()
	// Taking a buffer or a slot fails once the connection is done.
	ctx := context.Background()
	for {
		select {
		case <-c.ctlWake:
		case <-c.done:
			return
		}
		for {
			c.mu.Lock()
			due := c.creditDue()
			c.mu.Unlock()
			if !due {
				break
			}
			buf, err := c.takeSendBuf(ctx)
			if err != nil {
				return
			}
			slot, err := c.takeSlot(ctx)
			if err != nil {
				c.sendBufs <- buf
				return
			}
			if err := c.postMessage(slot, buf, 0, true); err != nil {
				if errors.Is(err, errNotDue) {
					break
				}
				return
			}
		}
	}
}
