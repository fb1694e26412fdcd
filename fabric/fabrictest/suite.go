package fabrictest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
)

// TestTransport runs every behaviour the fabric interfaces promise against
// the transports p makes, each as a subtest of t.
func TestTransport(t *testing.T, p Provider) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Provider)
	}{
		{"SendRecvOrder", testSendRecvOrder},
		{"SendTooLarge", testSendTooLarge},
		{"Credits", testCredits},
		{"CreditsBothWays", testCreditsBothWays},
		{"SendCancel", testSendCancel},
		{"RecvCancel", testRecvCancel},
		{"Register", testRegister},
		{"WriteThenSend", testWriteThenSend},
		{"WriteAtOffset", testWriteAtOffset},
		{"Read", testRead},
		{"ReadThenWrite", testReadThenWrite},
		{"ConcurrentOps", testConcurrentOps},
		{"LocalArgumentErrors", testLocalArgumentErrors},
		{"RegionViolation", testRegionViolation},
		{"PeerClose", testPeerClose},
		{"PendingOpsOnClose", testPendingOpsOnClose},
		{"LocalCloseCompletesOps", testLocalCloseCompletesOps},
		{"AcceptCancel", testAcceptCancel},
		{"DialRefused", testDialRefused},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, p) })
	}
}

func testSendRecvOrder(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{RecvDepth: 8})
	cli, srv := f.Connect(fabric.ConnOptions{RecvDepth: 8})
	if cli.MaxMessage() != fabric.DefaultMaxMessage {
		t.Fatalf("max message %d", cli.MaxMessage())
	}

	const n = 500
	errc := make(chan error, 1)
	go func() {
		msg := make([]byte, cli.MaxMessage())
		for i := range n {
			m := msg[:i%len(msg)]
			Pattern(m, i)
			if err := cli.Send(Context(t), m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()

	want := make([]byte, srv.MaxMessage())
	for i := range n {
		m, err := srv.Recv(Context(t))
		if err != nil {
			t.Fatal(err)
		}
		w := want[:i%len(want)]
		Pattern(w, i)
		if !bytes.Equal(m.Bytes(), w) {
			t.Fatalf("message %d: got %d bytes, differ from the %d sent", i, len(m.Bytes()), len(w))
		}
		m.Release()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func testSendTooLarge(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{MaxMessage: 1024})
	cli, srv := f.Connect(fabric.ConnOptions{MaxMessage: 8192})
	if cli.MaxMessage() != 1024 || srv.MaxMessage() != 1024 {
		t.Fatalf("agreed %d and %d, want 1024", cli.MaxMessage(), srv.MaxMessage())
	}
	if err := cli.Send(Context(t), make([]byte, 1025)); !errors.Is(err, fabric.ErrMessageTooLarge) {
		t.Fatalf("send 1025: %v", err)
	}

	// The connection is still good.
	if err := cli.Send(Context(t), make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	m, err := srv.Recv(Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Bytes()) != 1024 {
		t.Fatalf("got %d bytes", len(m.Bytes()))
	}
	m.Release()
}

// testCredits checks that a sender stops at the receiver's depth and goes
// on once a message is released.
func testCredits(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{RecvDepth: 4})
	cli, srv := f.Connect(fabric.ConnOptions{})
	if got := cli.Credits(); got != 4 {
		t.Fatalf("initial credits %d, want 4", got)
	}
	for i := range 4 {
		if err := cli.Send(Context(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := cli.Credits(); got != 0 {
		t.Fatalf("credits after 4 sends %d", got)
	}

	sent := make(chan error, 1)
	go func() { sent <- cli.Send(Context(t), []byte{4}) }()
	select {
	case err := <-sent:
		t.Fatalf("fifth send did not wait: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	// One release lets the fifth through.
	m, err := srv.Recv(Context(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Release()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("fifth send still blocked after a release")
	}

	for i := 1; i < 5; i++ {
		m, err := srv.Recv(Context(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Bytes()[0] != byte(i) {
			t.Fatalf("message %d holds %d", i, m.Bytes()[0])
		}
		m.Release()
	}

	// Credits come back without further traffic from the receiver, at
	// least as many as the provider promises; the rest ride on the next
	// message either way.
	want := max(p.IdleCredits, 1)
	deadline := time.Now().Add(5 * time.Second)
	for cli.Credits() < want {
		if time.Now().After(deadline) {
			t.Fatalf("credits %d after all releases, want at least %d", cli.Credits(), want)
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 20 {
		roundTrip(t, cli, srv, []byte{byte(i)})
	}
}

// testCreditsBothWays fills both sides' receive buffers at once, with
// nothing to carry credits back but credit-only messages or frames.
func testCreditsBothWays(t *testing.T, p Provider) {
	for _, depth := range []int{1, 2, 5} {
		t.Run(fmt.Sprint("depth", depth), func(t *testing.T) {
			f := NewPair(t, p, fabric.ConnOptions{RecvDepth: depth})
			cli, srv := f.Connect(fabric.ConnOptions{RecvDepth: depth})
			const n = 300
			var wg sync.WaitGroup
			errc := make(chan error, 4)
			for _, c := range []fabric.Conn{cli, srv} {
				wg.Go(func() {
					for i := range n {
						if err := c.Send(Context(t), []byte{byte(i)}); err != nil {
							errc <- fmt.Errorf("send %d: %w", i, err)
							return
						}
					}
				})
				wg.Go(func() {
					for i := range n {
						m, err := c.Recv(Context(t))
						if err != nil {
							errc <- fmt.Errorf("recv %d: %w", i, err)
							return
						}
						if m.Bytes()[0] != byte(i) {
							errc <- fmt.Errorf("message %d holds %d", i, m.Bytes()[0])
						}
						// Hold some messages a while so that both sides
						// run out of credits now and then.
						if i%7 == 0 {
							time.Sleep(time.Millisecond)
						}
						m.Release()
					}
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
		})
	}
}

func testSendCancel(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{RecvDepth: 1})
	cli, _ := f.Connect(fabric.ConnOptions{})
	if err := cli.Send(Context(t), []byte("x")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan error, 1)
	go func() { sent <- cli.Send(ctx, []byte("y")) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-sent; !errors.Is(err, context.Canceled) {
		t.Fatalf("send: %v, want context.Canceled", err)
	}
	stillOpen(t, cli, "a cancelled send")
}

func testRecvCancel(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := cli.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("recv: %v", err)
	}
}

func testPeerClose(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, srv := f.Connect(fabric.ConnOptions{})
	if err := srv.Send(Context(t), []byte("last")); err != nil {
		t.Fatal(err)
	}
	// NB: a provider may flush what is not yet on the wire when it closes;
	// let the message land first.
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	srv.Close() // idempotent

	// A message that arrived before the close is still delivered.
	m, err := cli.Recv(Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Bytes()) != "last" {
		t.Fatalf("got %q", m.Bytes())
	}
	if _, err := cli.Recv(Context(t)); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("recv: %v", err)
	}
	WaitDone(t, cli)

	// A message held past the break stays readable until released.
	if string(m.Bytes()) != "last" {
		t.Fatalf("held message now %q", m.Bytes())
	}
	m.Release()
	if err := cli.Send(Context(t), []byte("x")); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("send: %v", err)
	}
	var cs [1]fabric.Completion
	if _, err := cli.Wait(Context(t), cs[:]); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait: %v", err)
	}
}

func testAcceptCancel(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Listener.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("accept: %v", err)
	}
	f.Listener.Close()
	if _, err := f.Listener.Accept(context.Background()); err == nil {
		t.Fatal("accept on a closed listener succeeded")
	}
}

func testDialRefused(t *testing.T, p Provider) {
	tr := p.New(t, Initiator)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, p.Host+":1", fabric.ConnOptions{})
	if err == nil {
		c.Close()
		t.Fatal("dial to a port nobody listens on succeeded")
	}
	t.Logf("dial: %v", err)
}
