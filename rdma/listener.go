package rdma

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
)

// connParam is what both sides put in connect and accept: the hello, the
// read depth, and retries. Receive buffers are always posted before the
// peer may send (see doc.go), so a receiver-not-ready NAK means a bug:
// a few retries, then the error surfaces.
func (t *Transport) connParam(opts fabric.ConnOptions) cgo.ConnParam {
	h := hello{RecvDepth: uint32(opts.RecvDepth), MaxMessage: uint32(opts.MaxMessage)}
	return cgo.ConnParam{
		PrivateData:        h.bytes(),
		ResponderResources: t.rdDepth,
		InitiatorDepth:     t.rdDepth,
		RetryCount:         7,
		RNRRetryCount:      3,
	}
}

// waitEvent waits for the next rdma_cm event on ch within ctx.
func waitEvent(ctx context.Context, ch *cgo.EventChannel, w *fdWaiter) (cgo.CMEvent, error) {
	var ev cgo.CMEvent
	var gerr error
	err := w.wait(ctx, func() bool {
		ev, gerr = ch.GetEvent()
		return !errors.Is(gerr, syscall.EAGAIN)
	})
	if err != nil {
		return ev, err
	}
	return ev, gerr
}

// expect waits for an event of type want; any other is an error.
func expect(ctx context.Context, ch *cgo.EventChannel, w *fdWaiter,
	want cgo.CMEventType) (cgo.CMEvent, error) {
	ev, err := waitEvent(ctx, ch, w)
	if err != nil {
		return ev, fmt.Errorf("wait for %s: %w", want, err)
	}
	if ev.ID != nil {
		// A connect request cannot come on a channel that is not a
		// listener's; refuse it whatever it is.
		ev.ID.Reject(nil)
		ev.ID.Close()
	}
	if ev.Type != want {
		return ev, eventError(ev)
	}
	return ev, nil
}

func eventError(ev cgo.CMEvent) error {
	switch ev.Type {
	case cgo.EventRejected:
		return fmt.Errorf("%s (reason %d): %w", ev.Type, ev.Status, syscall.ECONNREFUSED)
	case cgo.EventAddrError, cgo.EventRouteError, cgo.EventUnreachable, cgo.EventConnectError:
		if ev.Status < 0 {
			return fmt.Errorf("%s: %w", ev.Type, syscall.Errno(-ev.Status))
		}
	}
	return fmt.Errorf("unexpected rdma_cm event %s (status %d)", ev.Type, ev.Status)
}

// Dial connects to addr ("host:port", the address of an RDMA-capable
// interface) within ctx: address and route resolution, then a connect
// request carrying the hello.
func (t *Transport) Dial(ctx context.Context, addr string,
	opts fabric.ConnOptions) (fabric.Conn, error) {
	c, err := t.dial(ctx, addr, opts)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}

func (t *Transport) dial(ctx context.Context, addr string, opts fabric.ConnOptions) (*conn, error) {
	opts, err := t.checkOptions(opts)
	if err != nil {
		return nil, err
	}
	ap, err := resolve(ctx, addr)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
	}

	id, ech, ecw, release, err := openID()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*conn, error) {
		release()
		return nil, err
	}

	if err := id.ResolveAddr(ap, resolveTimeout); err != nil {
		return fail(err)
	}
	if _, err := expect(ctx, ech, ecw, cgo.EventAddrResolved); err != nil {
		return fail(fmt.Errorf("resolve address: %w", err))
	}
	if !id.OnDevice(t.dev) {
		return fail(fmt.Errorf("address is on device %s, transport uses %s: %w",
			id.DeviceName(), t.dev.Name, fabric.ErrNotSupported))
	}
	if err := id.ResolveRoute(resolveTimeout); err != nil {
		return fail(err)
	}
	if _, err := expect(ctx, ech, ecw, cgo.EventRouteResolved); err != nil {
		return fail(fmt.Errorf("resolve route: %w", err))
	}

	c, err := t.newConn(id, ech, ecw, opts)
	if err != nil {
		return nil, err
	}
	if err := id.Connect(t.connParam(opts)); err != nil {
		c.destroy()
		return nil, err
	}
	ev, err := expect(ctx, ech, ecw, cgo.EventEstablished)
	if err != nil {
		c.destroy()
		return nil, fmt.Errorf("connect: %w", err)
	}
	peer, err := decodeHello(ev.PrivateData)
	if err != nil {
		c.destroy()
		return nil, err
	}
	if err := c.finish(peer); err != nil {
		c.destroy()
		return nil, err
	}
	c.start()
	if err := t.adopt(c); err != nil {
		return nil, err
	}
	return c, nil
}

// listener accepts connect requests on its own goroutine, sets each
// connection up on another, so that a slow peer holds up nobody, and
// hands finished connections to Accept.
type listener struct {
	t    *Transport
	id   *cgo.CMID
	ech  *cgo.EventChannel
	ecw  *fdWaiter
	opts fabric.ConnOptions
	addr string

	ctx    context.Context
	cancel context.CancelFunc
	ready  chan *conn
	once   sync.Once
	wg     sync.WaitGroup
}

// Listen binds addr (host:port; port 0 picks one) and listens for
// connect requests. A wildcard host listens on every device, but only
// requests arriving on the transport's device are accepted.
func (t *Transport) Listen(addr string, opts fabric.ConnOptions) (fabric.Listener, error) {
	l, err := t.listen(addr, opts)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

func (t *Transport) listen(addr string, opts fabric.ConnOptions) (*listener, error) {
	opts, err := t.checkOptions(opts)
	if err != nil {
		return nil, err
	}
	ap, err := resolve(context.Background(), addr)
	if err != nil {
		return nil, err
	}
	id, ech, ecw, release, err := openID()
	if err != nil {
		return nil, err
	}
	if err := id.Bind(ap); err == nil {
		err = id.Listen(128)
	}
	if err != nil {
		release()
		return nil, err
	}

	l := &listener{t: t, id: id, ech: ech, ecw: ecw, opts: opts,
		addr: id.LocalAddr().String(), ready: make(chan *conn)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		l.Close()
		return nil, errTransportClosed
	}
	t.listeners[l] = struct{}{}
	t.mu.Unlock()

	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *listener) Addr() string { return l.addr }

// Accept returns the next connection whose set-up succeeded.
func (l *listener) Accept(ctx context.Context) (fabric.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("accept: %w", ctx.Err())
	case <-l.ctx.Done():
		return nil, fmt.Errorf("accept: %w", net.ErrClosed)
	}
}

// Close stops listening, abandons set-ups under way and closes
// connections not yet taken by Accept. Accepted connections stay open.
func (l *listener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.ecw.close()
		l.wg.Wait()
		l.id.Close()
		l.ech.Close()

		l.t.mu.Lock()
		delete(l.t.listeners, l)
		l.t.mu.Unlock()
	})
	return nil
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	for {
		ev, err := waitEvent(l.ctx, l.ech, l.ecw)
		if err != nil {
			if l.ctx.Err() == nil {
				l.t.log.Warn("rdma: listener stopped", "addr", l.addr, "err", err)
			}
			return
		}
		if ev.Type != cgo.EventConnectRequest || ev.ID == nil {
			l.t.log.Debug("rdma: listener event", "event", ev.Type.String(), "status", ev.Status)
			continue
		}
		l.request(ev)
	}
}

// request checks a connect request and sets the connection up in the
// background.
func (l *listener) request(ev cgo.CMEvent) {
	id := ev.ID
	peer, err := decodeHello(ev.PrivateData)
	if err == nil && !id.OnDevice(l.t.dev) {
		err = fmt.Errorf("request on device %s, transport uses %s", id.DeviceName(), l.t.dev.Name)
	}
	if err != nil {
		l.t.log.Warn("rdma: refusing connect request", "addr", l.addr,
			"peer", id.PeerAddr().String(), "err", err)
		id.Reject(nil)
		id.Close()
		return
	}
	l.wg.Add(1)
	go l.setUp(id, peer)
}

func (l *listener) setUp(id *cgo.CMID, peer hello) {
	defer l.wg.Done()
	c, err := l.accept(id, peer)
	if err != nil {
		l.t.log.Warn("rdma: connection set-up", "addr", l.addr,
			"peer", id.PeerAddr().String(), "err", err)
		return
	}
	select {
	case l.ready <- c:
	case <-l.ctx.Done():
		c.Close()
	}
}

// accept moves id to an event channel of its own, builds the connection
// and accepts. On failure id is gone.
func (l *listener) accept(id *cgo.CMID, peer hello) (*conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout)
	defer cancel()

	ech, ecw, err := openEventChannel()
	if err == nil {
		if err = id.Migrate(ech); err != nil {
			ecw.close()
			ech.Close()
		}
	}
	if err != nil {
		id.Reject(nil)
		id.Close()
		return nil, err
	}

	c, err := l.t.newConn(id, ech, ecw, l.opts)
	if err != nil {
		return nil, err
	}
	if err := c.finish(peer); err != nil {
		id.Reject(nil)
		c.destroy()
		return nil, err
	}
	if err := id.Accept(l.t.connParam(l.opts)); err != nil {
		c.destroy()
		return nil, err
	}
	if _, err := expect(ctx, ech, ecw, cgo.EventEstablished); err != nil {
		c.destroy()
		return nil, err
	}
	c.start()
	if err := l.t.adopt(c); err != nil {
		return nil, err
	}
	return c, nil
}

// openEventChannel creates an rdma_cm event channel and the waiter that
// lets a context or Close interrupt waits on it.
func openEventChannel() (*cgo.EventChannel, *fdWaiter, error) {
	ech, err := cgo.CreateEventChannel()
	if err != nil {
		return nil, nil, err
	}
	ecw, err := newFDWaiter(ech.Fd(), "event channel")
	if err != nil {
		ech.Close()
		return nil, nil, err
	}
	return ech, ecw, nil
}

// openID is openEventChannel plus an rdma_cm id on that channel; release
// closes all three, in reverse order.
func openID() (id *cgo.CMID, ech *cgo.EventChannel, ecw *fdWaiter, release func(), err error) {
	if ech, ecw, err = openEventChannel(); err != nil {
		return nil, nil, nil, nil, err
	}
	if id, err = cgo.CreateID(ech); err != nil {
		ecw.close()
		ech.Close()
		return nil, nil, nil, nil, err
	}
	return id, ech, ecw, func() { id.Close(); ecw.close(); ech.Close() }, nil
}
