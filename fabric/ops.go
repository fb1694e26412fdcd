package fabric

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Ops turns a Conn's completion queue into blocking one-sided calls. It
// owns the Conn's completions: nothing else may Poll or Wait on that Conn
// once Ops is running. Operation ids are its own.
type Ops struct {
	conn    Conn
	next    atomic.Uint64
	timeout time.Duration

	mu      sync.Mutex
	pending map[uint64]chan Completion
	err     error
	done    chan struct{}
}

// NewOps starts the goroutine that reaps conn's completions. It ends when
// the connection is done.
func NewOps(conn Conn) *Ops { return NewOpsTimeout(conn, 0) }

// NewOpsTimeout is NewOps with a watchdog: an operation not complete after
// timeout closes the connection, which completes it (and every other) with
// an error. The memory it names is then free to reuse, which is the point:
// a peer that stops taking data cannot pin it. Zero means no watchdog.
func NewOpsTimeout(conn Conn, timeout time.Duration) *Ops {
	o := &Ops{conn: conn, timeout: timeout, pending: make(map[uint64]chan Completion),
		done: make(chan struct{})}
	go o.reap()
	return o
}

func (o *Ops) reap() {
	defer close(o.done)
	cs := make([]Completion, 32)
	for {
		n, err := o.conn.Wait(context.Background(), cs)
		for _, c := range cs[:n] {
			o.mu.Lock()
			ch := o.pending[c.ID]
			delete(o.pending, c.ID)
			o.mu.Unlock()
			if ch != nil {
				ch <- c
			}
		}
		if err != nil {
			// Providers complete every posted operation with an error when
			// the connection breaks; fail whatever is still registered in
			// case one did not.
			o.mu.Lock()
			o.err = err
			for id, ch := range o.pending {
				ch <- Completion{ID: id, Err: err}
				delete(o.pending, id)
			}
			o.mu.Unlock()
			return
		}
	}
}

func (o *Ops) post(op Verb, local MemoryRegion, off, n int, remote RemoteRegion, remoteOff uint64) (chan Completion, error) {
	id := o.next.Add(1)
	ch := make(chan Completion, 1)

	o.mu.Lock()
	if o.err != nil {
		err := o.err
		o.mu.Unlock()
		return nil, err
	}
	o.pending[id] = ch
	o.mu.Unlock()

	var err error
	if op == VerbWrite {
		err = o.conn.PostWrite(id, local, off, n, remote, remoteOff)
	} else {
		err = o.conn.PostRead(id, local, off, n, remote, remoteOff)
	}
	if err != nil {
		o.mu.Lock()
		delete(o.pending, id)
		o.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// Write performs a one-sided write and waits for its completion. If ctx
// ends first the write may still land; the caller must keep local intact
// until the connection is closed.
func (o *Ops) Write(ctx context.Context, local MemoryRegion, off, n int, remote RemoteRegion, remoteOff uint64) error {
	return o.do(ctx, VerbWrite, local, off, n, remote, remoteOff)
}

// Read performs a one-sided read and waits for its completion, with the
// same caveat as Write about ctx.
func (o *Ops) Read(ctx context.Context, local MemoryRegion, off, n int, remote RemoteRegion, remoteOff uint64) error {
	return o.do(ctx, VerbRead, local, off, n, remote, remoteOff)
}

func (o *Ops) do(ctx context.Context, op Verb, local MemoryRegion, off, n int, remote RemoteRegion, remoteOff uint64) error {
	// The watchdog runs from before the post: with a provider whose post
	// itself waits (TCP with a full socket), only closing the connection
	// ends the wait.
	var expired atomic.Bool
	if o.timeout > 0 {
		t := time.AfterFunc(o.timeout, func() {
			expired.Store(true)
			o.conn.Close()
		})
		defer t.Stop()
	}
	why := func(err error) error {
		if expired.Load() {
			return fmt.Errorf("%s of %d bytes not done after %v, connection closed: %w",
				op, n, o.timeout, err)
		}
		return fmt.Errorf("%s of %d bytes: %w", op, n, err)
	}

	ch, err := o.post(op, local, off, n, remote, remoteOff)
	if err != nil {
		return why(fmt.Errorf("post: %w", err))
	}
	select {
	case c := <-ch:
		if c.Err != nil {
			return why(c.Err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
