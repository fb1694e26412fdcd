package fabrictest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
)

// timeout bounds every blocking call of the suite: connection set-up,
// a Send or Recv, a wait for a completion or for a connection to break.
// It matters only when a test fails.
const timeout = 20 * time.Second

// Side says which end of the connections a transport serves in a Pair.
type Side int

const (
	// Target is the listening side, which registers the regions the
	// initiator's one-sided operations name.
	Target Side = iota
	// Initiator is the dialling side, which posts the operations.
	Initiator
)

func (s Side) String() string {
	if s == Target {
		return "target"
	}
	return "initiator"
}

// ViolationSide says which end of a connection learns, with an error
// wrapping fabric.ErrRegion, that the initiator named a remote region it
// may not touch. Both ends see the connection break either way.
type ViolationSide int

const (
	// AtInitiator is RDMA's way: the target's device refuses the access,
	// the initiator's operation completes with the error, and the target's
	// application hears only that the connection broke.
	AtInitiator ViolationSide = iota
	// AtTarget is the way of a provider that checks the access in
	// software at the target (TCP): the target's connection fails with the
	// error and the initiator only sees its connection break, with its
	// operations completing with fabric.ErrConnClosed (a write already
	// handed to the network may even complete without error).
	AtTarget
)

// Provider describes the transports under test to the suite.
type Provider struct {
	// New returns a new transport for one side; the suite closes it at the
	// end of the test. It may skip t when the capability the provider
	// needs is missing.
	New func(t testing.TB, side Side) fabric.Transport
	// Host is the host the target listens on and dials are made to, in
	// the form Listen takes without the port: "127.0.0.1" for TCP, the
	// address of the RDMA device's interface for RDMA.
	Host string
	// Alloc, if set, returns n bytes of memory to register, for the larger
	// buffers of the suite: an RDMA provider hands out page-aligned
	// mappings, as the target's buffers are. Smaller buffers always come
	// from make, so that both kinds of memory are covered. Nil means make.
	Alloc func(t testing.TB, n int) []byte

	// Violation says which end sees fabric.ErrRegion after a remote
	// access violation.
	Violation ViolationSide
	// CheckViolation, if set, is called after each remote access
	// violation with both ends of the broken connection, for what the
	// provider promises beyond the interface (its own error types, a log
	// line).
	CheckViolation func(t *testing.T, initiator, target fabric.Conn)
	// IdleCredits is how many of its 4 credits a sender is guaranteed to
	// see back, once the receiver has released every message, with no
	// further traffic from either side. The rest may wait to ride on a
	// later message. Zero means 1, the least that avoids a deadlock.
	IdleCredits int
}

func (p Provider) alloc(t testing.TB, n int) []byte {
	if p.Alloc == nil {
		return make([]byte, n)
	}
	return p.Alloc(t, n)
}

// Pair is a target transport with a listener and an initiator transport,
// all closed at the end of the test.
type Pair struct {
	Target, Initiator fabric.Transport
	Listener          fabric.Listener
	t                 testing.TB
}

// NewPair makes the two transports of p and has the target listen on
// p.Host with targetOpts.
func NewPair(t testing.TB, p Provider, targetOpts fabric.ConnOptions) *Pair {
	t.Helper()
	f := &Pair{t: t}
	f.Target = p.New(t, Target)
	t.Cleanup(func() { f.Target.Close() })
	f.Initiator = p.New(t, Initiator)
	t.Cleanup(func() { f.Initiator.Close() })
	ln, err := f.Target.Listen(p.Host+":0", targetOpts)
	if err != nil {
		t.Fatal(err)
	}
	f.Listener = ln
	t.Cleanup(func() { ln.Close() })
	return f
}

// Connect dials the target with opts and accepts the other end. Both are
// closed at the end of the test.
func (f *Pair) Connect(opts fabric.ConnOptions) (initiator, target fabric.Conn) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	initiator, err := f.Initiator.Dial(ctx, f.Listener.Addr(), opts)
	if err != nil {
		f.t.Fatal(err)
	}
	target, err = f.Listener.Accept(ctx)
	if err != nil {
		initiator.Close()
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { initiator.Close(); target.Close() })
	return initiator, target
}

// Register registers buf with tr and deregisters it at the end of the
// test.
func Register(t testing.TB, tr fabric.Transport, buf []byte, a fabric.Access) fabric.MemoryRegion {
	t.Helper()
	mr, err := tr.Register(buf, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mr.Close() })
	return mr
}

// Context returns a context that ends with the test, or after the
// suite's timeout.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// WaitOne waits for exactly one completion on c.
func WaitOne(t testing.TB, c fabric.Conn) fabric.Completion {
	t.Helper()
	var cs [1]fabric.Completion
	n, err := c.Wait(Context(t), cs[:])
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if n != 1 {
		t.Fatalf("wait returned %d completions", n)
	}
	return cs[0]
}

// WaitDone waits for c to break and returns its error, which must wrap
// fabric.ErrConnClosed.
func WaitDone(t testing.TB, c fabric.Conn) error {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(timeout):
		t.Fatal("connection did not break")
	}
	err := c.Err()
	if !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("Err() = %v, want ErrConnClosed", err)
	}
	return err
}

// Pattern fills b with bytes derived from seed.
func Pattern(b []byte, seed int) {
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
}

// roundTrip sends msg from a to b and releases it there.
func roundTrip(t testing.TB, a, b fabric.Conn, msg []byte) {
	t.Helper()
	if err := a.Send(Context(t), msg); err != nil {
		t.Fatal(err)
	}
	m, err := b.Recv(Context(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Release()
}

// stillOpen fails t if c is broken, which what happened must not have
// done.
func stillOpen(t testing.TB, c fabric.Conn, what string) {
	t.Helper()
	select {
	case <-c.Done():
		t.Fatalf("%s broke the connection: %v", what, c.Err())
	default:
	}
}
