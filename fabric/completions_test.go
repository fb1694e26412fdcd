package fabric

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCompletionQueue(t *testing.T) {
	q := NewCompletionQueue()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		if err := q.Begin(); err != nil {
			t.Fatal(err)
		}
	}
	q.Complete(Completion{ID: 1})
	cs := make([]Completion, 4)
	if n := q.Poll(cs); n != 1 || cs[0].ID != 1 {
		t.Fatalf("poll: %d %+v", n, cs[0])
	}

	// Closed with one operation in flight: no new ones, and the error
	// only after the last completion is taken.
	errBroken := errors.New("broken")
	q.Close(errBroken)
	q.Close(errors.New("second")) // ignored
	if err := q.Begin(); !errors.Is(err, errBroken) {
		t.Fatalf("begin after close: %v", err)
	}
	got := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := q.Wait(ctx, cs[:1])
			got <- err
		}()
	}
	time.Sleep(10 * time.Millisecond)
	q.Complete(Completion{ID: 2})
	var errs []error
	for range 2 {
		errs = append(errs, <-got)
	}
	// One waiter takes the completion, the other then sees the end.
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), errBroken) {
		t.Fatalf("waiters returned %v", errs)
	}
	if n, err := q.Wait(ctx, cs); n != 0 || !errors.Is(err, errBroken) {
		t.Fatalf("wait on a drained queue: %d %v", n, err)
	}
}

func TestCompletionQueueWaitCancel(t *testing.T) {
	q := NewCompletionQueue()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := q.Wait(ctx, make([]Completion, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	if n, err := q.Wait(ctx, nil); n != 0 || err != nil {
		t.Fatalf("wait with no room: %d %v", n, err)
	}
}
