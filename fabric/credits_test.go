package fabric

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCreditsWaitAndClose(t *testing.T) {
	c := NewCredits(1)
	if err := c.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- c.Take(context.Background()) }()
	select {
	case err := <-got:
		t.Fatalf("Take returned %v with no credit", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Add(1)
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.Take(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Take with no credit: %v", err)
	}
	go func() { got <- c.Take(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	c.Close(ErrConnClosed)
	if err := <-got; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Take after Close: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { c.Add(1) }); n != 0 {
		t.Errorf("Add with nobody waiting allocates %v times", n)
	}
}
