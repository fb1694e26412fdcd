package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
)

// listener accepts in the background, runs each handshake in its own
// goroutine so that a slow or hostile peer holds up nobody, and hands
// finished connections to Accept.
type listener struct {
	t    *Transport
	ln   net.Listener
	opts fabric.ConnOptions
	addr string

	ready chan *conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{}
}

func newListener(t *Transport, ln net.Listener, opts fabric.ConnOptions) *listener {
	return &listener{
		t:       t,
		ln:      ln,
		opts:    opts,
		addr:    ln.Addr().String(),
		ready:   make(chan *conn),
		done:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
	}
}

func (l *listener) start() {
	l.wg.Add(1)
	go l.acceptLoop()
}

func (l *listener) Addr() string { return l.addr }

// Accept returns the next connection whose handshake succeeded.
func (l *listener) Accept(ctx context.Context) (fabric.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("accept: %w", ctx.Err())
	case <-l.done:
		return nil, fmt.Errorf("accept: %w", net.ErrClosed)
	}
}

// Close stops accepting, abandons handshakes under way and closes
// connections not yet taken by Accept. Accepted connections stay open.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.ln.Close()
		l.mu.Lock()
		for nc := range l.pending {
			nc.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()

		l.t.mu.Lock()
		delete(l.t.listeners, l)
		l.t.mu.Unlock()
	})
	return err
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off and retry.
			l.t.log.Warn("tcp: accept", "addr", l.addr, "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-l.done:
				return
			}
			continue
		}

		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			nc.Close()
			return
		default:
		}
		l.pending[nc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.setUp(nc.(*net.TCPConn))
	}
}

func (l *listener) setUp(nc *net.TCPConn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	c, err := l.t.setUp(ctx, nc, l.opts)
	cancel()

	l.mu.Lock()
	delete(l.pending, nc)
	l.mu.Unlock()
	if err != nil {
		lvl := slog.LevelWarn
		select {
		case <-l.done:
			lvl = slog.LevelDebug
		default:
		}
		l.t.log.Log(context.Background(), lvl, "tcp: connection set-up",
			"addr", l.addr, "peer", nc.RemoteAddr().String(), "err", err)
		return
	}

	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}
