package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/initiator"
)

// TestCancelledCallsKeepBuffers cancels calls while the target works on
// them: the calls return at once, the buffers stay registered until the
// replies come, and the client stays usable.
func TestCancelledCallsKeepBuffers(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "impatient")
	elf, _ := ext.ELF("filter")
	x, err := c.Load(ctxT(t), "filter", elf)
	if err != nil {
		t.Fatal(err)
	}

	for range 20 {
		res, err := c.NewBuffer(256 << 10)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: nsBlocks,
				Args: []uint64{64, 8, 2, 1 << 60}}, res)
			done <- err
		}()
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled exec: %v", err)
		}
		// Close waits for the target's reply if the exec was still running.
		if err := res.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctxT(t), x, initiator.ExecRequest{NS: 1, Blocks: 8, Args: []uint64{64, 8, 2, 1 << 60}}, nil); err != nil {
		t.Fatalf("exec after cancellations: %v", err)
	}
}

// TestShutdownFinishesInFlight shuts the target down under load: requests
// already taken complete, later ones are refused or see the connection
// close, and nothing hangs.
func TestShutdownFinishesInFlight(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "late")
	elf, _ := ext.ELF("count")
	x, err := c.Load(ctxT(t), "count", elf)
	if err != nil {
		t.Fatal(err)
	}

	results := make(chan error, 16)
	for range 16 {
		go func() {
			_, err := c.Exec(context.Background(), x, initiator.ExecRequest{NS: 1, Blocks: nsBlocks,
				Args: []uint64{64, 8, 2, 1 << 60}}, nil)
			results <- err
		}()
	}
	time.Sleep(5 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ok := 0
	for range 16 {
		err := <-results
		switch {
		case err == nil:
			ok++
		case initiator.StatusOf(err) == fabric.StatusShuttingDown, errors.Is(err, fabric.ErrConnClosed):
		default:
			t.Errorf("exec during shutdown: %v", err)
		}
	}
	t.Logf("%d of 16 requests completed before shutdown", ok)
}
