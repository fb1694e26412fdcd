package fabric

import (
	"context"
	"sync"
)

// CompletionQueue holds the completions of one Conn's one-sided
// operations and gives them out with the Poll and Wait semantics of Conn.
// It is here, not in each provider, so that every provider reports the
// end of a broken connection the same way: Wait returns what completed,
// and the connection's error only once every operation begun has
// completed.
type CompletionQueue struct {
	mu       sync.Mutex
	comps    []Completion
	inflight int
	err      error
	// wake holds a token when completions may have arrived; closed is
	// closed by Close, waking every waiter.
	wake   chan struct{}
	closed chan struct{}
}

// NewCompletionQueue returns an empty, open queue.
func NewCompletionQueue() *CompletionQueue {
	return &CompletionQueue{wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

// Begin counts an operation in flight, whose end the provider must report
// with Complete, or returns the error the queue was closed with.
func (q *CompletionQueue) Begin() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.inflight++
	return nil
}

// Complete queues the completion of an operation counted by Begin.
func (q *CompletionQueue) Complete(c Completion) {
	q.mu.Lock()
	q.inflight--
	q.comps = append(q.comps, c)
	q.mu.Unlock()
	q.notify()
}

// Close fails later Begin calls with err, and has Wait return err once the
// operations in flight have completed and their completions are taken.
// The first error wins.
func (q *CompletionQueue) Close(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
		close(q.closed)
	}
}

func (q *CompletionQueue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Poll implements Conn.Poll.
func (q *CompletionQueue) Poll(cs []Completion) int {
	q.mu.Lock()
	n := copy(cs, q.comps)
	if n > 0 {
		rest := copy(q.comps, q.comps[n:])
		clear(q.comps[rest:])
		q.comps = q.comps[:rest]
	}
	q.mu.Unlock()
	return n
}

// Wait implements Conn.Wait. Once the queue is closed it returns the
// remaining completions, then the error it was closed with.
func (q *CompletionQueue) Wait(ctx context.Context, cs []Completion) (int, error) {
	if len(cs) == 0 {
		return 0, nil
	}
	closed := q.closed
	for {
		n := q.Poll(cs)
		q.mu.Lock()
		left := len(q.comps)
		err, idle := q.err, q.inflight == 0 && left == 0
		q.mu.Unlock()
		if n > 0 {
			// Pass the wake-up on to another waiter if there is more for
			// it: completions left, or the end.
			if left > 0 || err != nil && idle {
				q.notify()
			}
			return n, nil
		}
		if err != nil && idle {
			return 0, err
		}

		select {
		case <-q.wake:
		case <-closed:
			// Operations still in flight complete with errors and wake us.
			closed = nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
