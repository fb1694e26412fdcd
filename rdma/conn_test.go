package rdma

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

// The tests below run on a device (inside the VM) and check the same
// behaviours as fabric/tcp's tests, seen through fabric.Conn.

func TestSendRecvOrder(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{RecvDepth: 8})
	cli, srv := f.connect(fabric.ConnOptions{RecvDepth: 8})
	if cli.MaxMessage() != fabric.DefaultMaxMessage {
		t.Fatalf("max message %d", cli.MaxMessage())
	}

	const n = 500
	errc := make(chan error, 1)
	go func() {
		msg := make([]byte, cli.MaxMessage())
		for i := range n {
			m := msg[:i%len(msg)]
			pattern(m, i)
			if err := cli.Send(ctxT(t), m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()

	want := make([]byte, srv.MaxMessage())
	for i := range n {
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		w := want[:i%len(want)]
		pattern(w, i)
		if !bytes.Equal(m.Bytes(), w) {
			t.Fatalf("message %d: got %d bytes, differ from the %d sent", i, len(m.Bytes()), len(w))
		}
		m.Release()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestSendTooLarge(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{MaxMessage: 1024})
	cli, srv := f.connect(fabric.ConnOptions{MaxMessage: 8192})
	if cli.MaxMessage() != 1024 || srv.MaxMessage() != 1024 {
		t.Fatalf("agreed %d and %d, want 1024", cli.MaxMessage(), srv.MaxMessage())
	}
	if err := cli.Send(ctxT(t), make([]byte, 1025)); !errors.Is(err, fabric.ErrMessageTooLarge) {
		t.Fatalf("send 1025: %v", err)
	}
	if err := cli.Send(ctxT(t), make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	m, err := srv.Recv(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Bytes()) != 1024 {
		t.Fatalf("got %d bytes", len(m.Bytes()))
	}
	m.Release()
}

// TestCredits checks that a sender stops at the receiver's depth and goes
// on once a message is released.
func TestCredits(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{RecvDepth: 4})
	cli, srv := f.connect(fabric.ConnOptions{})
	if got := cli.Credits(); got != 4 {
		t.Fatalf("initial credits %d, want 4", got)
	}
	for i := range 4 {
		if err := cli.Send(ctxT(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := cli.Credits(); got != 0 {
		t.Fatalf("credits after 4 sends %d", got)
	}

	sent := make(chan error, 1)
	go func() { sent <- cli.Send(ctxT(t), []byte{4}) }()
	select {
	case err := <-sent:
		t.Fatalf("fifth send did not wait: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	m, err := srv.Recv(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Release()
	m.Release() // ignored
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("fifth send still blocked after a release")
	}

	for i := 1; i < 5; i++ {
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Bytes()[0] != byte(i) {
			t.Fatalf("message %d holds %d", i, m.Bytes()[0])
		}
		m.Release()
	}

	// Credits come back without traffic from the receiver as long as the
	// sender is low; the rest ride on the next message either way.
	deadline := time.Now().Add(5 * time.Second)
	for cli.Credits() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("credits %d after all releases", cli.Credits())
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 20 {
		if err := cli.Send(ctxT(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		m.Release()
	}
}

// TestCreditsBothWays fills both sides' receive buffers at once, with
// nothing to carry credits back but credit-only messages: the reserve
// buffer must keep them flowing.
func TestCreditsBothWays(t *testing.T) {
	for _, depth := range []int{1, 2, 5} {
		t.Run(fmt.Sprint("depth", depth), func(t *testing.T) {
			f := newFixture(t, fabric.ConnOptions{RecvDepth: depth})
			cli, srv := f.connect(fabric.ConnOptions{RecvDepth: depth})
			const n = 300
			var wg sync.WaitGroup
			errc := make(chan error, 4)
			for _, c := range []fabric.Conn{cli, srv} {
				wg.Go(func() {
					for i := range n {
						if err := c.Send(ctxT(t), []byte{byte(i)}); err != nil {
							errc <- fmt.Errorf("send %d: %w", i, err)
							return
						}
					}
				})
				wg.Go(func() {
					for i := range n {
						m, err := c.Recv(ctxT(t))
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

func TestSendCancel(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{RecvDepth: 1})
	cli, _ := f.connect(fabric.ConnOptions{})
	if err := cli.Send(ctxT(t), []byte("x")); err != nil {
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
	select {
	case <-cli.Done():
		t.Fatal("cancelled send broke the connection")
	default:
	}
}

func TestRecvCancel(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := cli.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("recv: %v", err)
	}
}

// TestWriteThenSend checks that a message posted after a write is
// received only once the write's bytes are in place: RC ordering.
func TestWriteThenSend(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, srv := f.connect(fabric.ConnOptions{})

	const size = 256 << 10
	dst := register(t, f.srv, mmapped(t, size), fabric.AccessLocalWrite|fabric.AccessRemoteWrite)
	src := register(t, f.cli, make([]byte, size), 0)

	for i := range 20 {
		pattern(src.Bytes(), i)
		if err := cli.PostWrite(uint64(i), src, 0, size, dst.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		if err := cli.Send(ctxT(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst.Bytes(), src.Bytes()) {
			t.Fatalf("round %d: message arrived before the write's bytes", i)
		}
		m.Release()
		c := waitOne(t, cli)
		if c.ID != uint64(i) || c.Verb != fabric.VerbWrite || c.Len != size || c.Err != nil {
			t.Fatalf("completion %+v", c)
		}
	}
}

func TestWriteAtOffset(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	dst := register(t, f.srv, make([]byte, 100), fabric.AccessRemoteWrite|fabric.AccessRemoteRead)
	src := register(t, f.cli, []byte("0123456789"), 0)

	sub, ok := dst.Remote().Slice(40, 20)
	if !ok {
		t.Fatal("slice")
	}
	if sub.Addr != dst.Remote().Addr+40 {
		t.Fatalf("sub-region address %#x, region at %#x", sub.Addr, dst.Remote().Addr)
	}
	if err := cli.PostWrite(1, src, 2, 5, sub, 3); err != nil {
		t.Fatal(err)
	}
	if c := waitOne(t, cli); c.Err != nil {
		t.Fatal(c.Err)
	}

	back := register(t, f.cli, make([]byte, 100), fabric.AccessLocalWrite)
	if err := cli.PostRead(2, back, 0, 100, dst.Remote(), 0); err != nil {
		t.Fatal(err)
	}
	if c := waitOne(t, cli); c.Err != nil || c.Verb != fabric.VerbRead {
		t.Fatalf("%+v", c)
	}
	want := make([]byte, 100)
	copy(want[43:], "23456")
	if !bytes.Equal(back.Bytes(), want) {
		t.Fatalf("region holds %q", back.Bytes())
	}
}

func TestRead(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	src := register(t, f.srv, mmapped(t, 1<<20), fabric.AccessRemoteRead)
	pattern(src.Bytes(), 3)
	dst := register(t, f.cli, make([]byte, 1<<20), fabric.AccessLocalWrite)

	if err := cli.PostRead(7, dst, 100, 500_000, src.Remote(), 1000); err != nil {
		t.Fatal(err)
	}
	c := waitOne(t, cli)
	if c.ID != 7 || c.Verb != fabric.VerbRead || c.Len != 500_000 || c.Err != nil {
		t.Fatalf("completion %+v", c)
	}
	if !bytes.Equal(dst.Bytes()[100:500_100], src.Bytes()[1000:501_000]) {
		t.Fatal("read bytes differ")
	}
	if dst.Bytes()[99] != 0 || dst.Bytes()[500_100] != 0 {
		t.Fatal("read wrote outside its range")
	}
}

// TestReadThenWrite checks that a read posted before a write to the same
// bytes returns the bytes from before the write.
func TestReadThenWrite(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, srv := f.connect(fabric.ConnOptions{})
	const size = 256 << 10
	remote := register(t, f.srv, make([]byte, size), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	back := register(t, f.cli, make([]byte, size), fabric.AccessLocalWrite)
	src := register(t, f.cli, make([]byte, size), 0)

	for i := range 5 {
		if err := cli.Send(ctxT(t), nil); err != nil {
			t.Fatal(err)
		}
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		m.Release()
		pattern(remote.Bytes(), i)
		old := bytes.Clone(remote.Bytes())
		if err := srv.Send(ctxT(t), nil); err != nil {
			t.Fatal(err)
		}
		if m, err = cli.Recv(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		m.Release()

		pattern(src.Bytes(), i+100)
		if err := cli.PostRead(1, back, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		if err := cli.PostWrite(2, src, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		waitOne(t, cli)
		waitOne(t, cli)
		if !bytes.Equal(back.Bytes(), old) {
			t.Fatalf("round %d: read saw the later write", i)
		}
		if err := cli.PostRead(3, back, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		waitOne(t, cli)
		if !bytes.Equal(back.Bytes(), src.Bytes()) {
			t.Fatalf("round %d: read after write missed it", i)
		}
	}
}

func TestConcurrentOps(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	ops := fabric.NewOps(cli)

	const (
		workers = 8
		rounds  = 50
		chunk   = 16 << 10
	)
	remote := register(t, f.srv, make([]byte, workers*chunk),
		fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	local := register(t, f.cli, mmapped(t, 2*workers*chunk), fabric.AccessLocalWrite)

	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			out := local.Bytes()[2*w*chunk : (2*w+1)*chunk]
			in := local.Bytes()[(2*w+1)*chunk : (2*w+2)*chunk]
			for r := range rounds {
				pattern(out, w*1000+r)
				err := ops.Write(ctxT(t), local, 2*w*chunk, chunk, remote.Remote(), uint64(w*chunk))
				if err != nil {
					errc <- err
					return
				}
				err = ops.Read(ctxT(t), local, (2*w+1)*chunk, chunk, remote.Remote(), uint64(w*chunk))
				if err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(in, out) {
					errc <- fmt.Errorf("worker %d round %d: read back differs", w, r)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestLocalArgumentErrors(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	remote := register(t, f.srv, make([]byte, 64), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	local := register(t, f.cli, make([]byte, 64), fabric.AccessLocalWrite)
	readOnly := register(t, f.cli, make([]byte, 64), 0)
	foreign := register(t, f.srv, make([]byte, 64), fabric.AccessLocalWrite)
	closed, err := f.cli.Register(make([]byte, 64), fabric.AccessLocalWrite)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()

	rr := remote.Remote()
	for _, tc := range []struct {
		name  string
		write bool
		local fabric.MemoryRegion
		off   int
		n     int
		rOff  uint64
	}{
		{"write past local end", true, local, 60, 8, 0},
		{"write negative offset", true, local, -1, 8, 0},
		{"write past remote end", true, local, 0, 8, 60},
		{"write foreign region", true, foreign, 0, 8, 0},
		{"write deregistered region", true, closed, 0, 8, 0},
		{"read past local end", false, local, 0, 65, 0},
		{"read past remote end", false, local, 0, 8, 57},
		{"read without local write", false, readOnly, 0, 8, 0},
		{"read foreign region", false, foreign, 0, 8, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.write {
				err = cli.PostWrite(1, tc.local, tc.off, tc.n, rr, tc.rOff)
			} else {
				err = cli.PostRead(1, tc.local, tc.off, tc.n, rr, tc.rOff)
			}
			if !errors.Is(err, fabric.ErrRegion) {
				t.Fatalf("got %v, want ErrRegion", err)
			}
		})
	}
	var cs [4]fabric.Completion
	if n := cli.Poll(cs[:]); n != 0 {
		t.Fatalf("rejected posts left %d completions", n)
	}
	select {
	case <-cli.Done():
		t.Fatal("local argument errors broke the connection")
	default:
	}
}

func TestRegister(t *testing.T) {
	needDevice(t)
	tr, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Register(nil, fabric.AccessLocalWrite); !errors.Is(err, fabric.ErrRegion) {
		t.Fatalf("empty buffer: %v", err)
	}
	buf := mmapped(t, 1<<20)
	keys := make(map[uint32]bool)
	for range 100 {
		mr, err := tr.Register(buf, fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
		if err != nil {
			t.Fatal(err)
		}
		r := mr.Remote()
		if keys[r.Key] {
			t.Fatalf("key %#x repeated", r.Key)
		}
		keys[r.Key] = true
		if r.Len != 1<<20 || r.Addr != uint64(addrOf(buf)) {
			t.Fatalf("remote %+v, buffer at %#x", r, addrOf(buf))
		}
	}
	// Transport.Close deregisters the hundred.
}

// TestRegionViolation posts one-sided operations the peer's device must
// refuse, and checks that they break that connection with an error, and
// only that connection.
func TestRegionViolation(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	rw := register(t, f.srv, make([]byte, 4096), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	ro := register(t, f.srv, make([]byte, 4096), fabric.AccessRemoteRead)
	wo := register(t, f.srv, make([]byte, 4096), fabric.AccessRemoteWrite)
	local := register(t, f.cli, make([]byte, 8192), fabric.AccessLocalWrite)

	unknown := rw.Remote()
	unknown.Key ^= 0x5a5a00
	grown := rw.Remote()
	grown.Len = 8192 // a peer lying about the length
	before := rw.Remote()
	before.Addr -= 16

	for _, tc := range []struct {
		name   string
		write  bool
		remote fabric.RemoteRegion
	}{
		{"write unknown key", true, unknown},
		{"write out of bounds", true, grown},
		{"write before region", true, before},
		{"write read-only region", true, ro.Remote()},
		{"read write-only region", false, wo.Remote()},
		{"read out of bounds", false, grown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := f.connect(fabric.ConnOptions{})
			off := uint64(0)
			if tc.remote == grown {
				off = 4090
			}
			var err error
			if tc.write {
				err = cli.PostWrite(1, local, 0, 64, tc.remote, off)
			} else {
				err = cli.PostRead(1, local, 0, 64, tc.remote, off)
			}
			if err != nil {
				t.Fatal(err)
			}
			var cs [2]fabric.Completion
			n, err := cli.Wait(ctxT(t), cs[:])
			if err != nil || n != 1 {
				t.Fatalf("wait: %d %v", n, err)
			}
			if !errors.Is(cs[0].Err, fabric.ErrRegion) || !errors.Is(cs[0].Err, fabric.ErrConnClosed) {
				t.Fatalf("completion error %v, want ErrRegion and ErrConnClosed", cs[0].Err)
			}
			t.Logf("initiator: %v", cs[0].Err)
			waitDone(t, cli)
			t.Logf("target: %v", waitDone(t, srv))
			if err := cli.PostWrite(2, local, 0, 8, rw.Remote(), 0); !errors.Is(err, fabric.ErrConnClosed) {
				t.Fatalf("post on broken connection: %v", err)
			}

			// The listener still serves.
			cli2, srv2 := f.connect(fabric.ConnOptions{})
			if err := cli2.Send(ctxT(t), []byte("still here")); err != nil {
				t.Fatal(err)
			}
			m, err := srv2.Recv(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			m.Release()
		})
	}
}

func TestPeerClose(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, srv := f.connect(fabric.ConnOptions{})
	if err := srv.Send(ctxT(t), []byte("last")); err != nil {
		t.Fatal(err)
	}
	// Let the message land before the close flushes it.
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	srv.Close() // idempotent

	m, err := cli.Recv(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Bytes()) != "last" {
		t.Fatalf("got %q", m.Bytes())
	}
	if _, err := cli.Recv(ctxT(t)); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("recv: %v", err)
	}
	waitDone(t, cli)
	// The message is released after the connection is gone: its buffer
	// stays mapped until then.
	if string(m.Bytes()) != "last" {
		t.Fatalf("held message now %q", m.Bytes())
	}
	m.Release()
	if err := cli.Send(ctxT(t), []byte("x")); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("send: %v", err)
	}
	var cs [1]fabric.Completion
	if _, err := cli.Wait(ctxT(t), cs[:]); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait: %v", err)
	}
}

// TestPendingOpsOnClose has the peer close while many one-sided
// operations are in flight: each completes, and those that did not make
// it complete with ErrConnClosed.
func TestPendingOpsOnClose(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, srv := f.connect(fabric.ConnOptions{})
	const size = 1 << 20
	remote := register(t, f.srv, mmapped(t, size), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	local := register(t, f.cli, mmapped(t, size), fabric.AccessLocalWrite)

	const n = 64
	for i := range n {
		var err error
		if i%2 == 0 {
			err = cli.PostRead(uint64(i), local, 0, size, remote.Remote(), 0)
		} else {
			err = cli.PostWrite(uint64(i), local, 0, size, remote.Remote(), 0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.Close()

	seen := make(map[uint64]bool)
	failed := 0
	cs := make([]fabric.Completion, 8)
	for len(seen) < n {
		k, err := cli.Wait(ctxT(t), cs)
		if err != nil {
			t.Fatalf("wait after %d completions: %v", len(seen), err)
		}
		for _, c := range cs[:k] {
			if c.Err != nil {
				if !errors.Is(c.Err, fabric.ErrConnClosed) {
					t.Fatalf("completion %+v", c)
				}
				failed++
			}
			if seen[c.ID] {
				t.Fatalf("completion %d twice", c.ID)
			}
			seen[c.ID] = true
		}
	}
	t.Logf("%d of %d operations failed with the close", failed, n)
	if _, err := cli.Wait(ctxT(t), cs); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait after all completions: %v", err)
	}
	if _, err := cli.Recv(ctxT(t)); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("recv: %v", err)
	}
	err := cli.PostRead(99, local, 0, 8, remote.Remote(), 0)
	if !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("post read on a closed connection: %v", err)
	}
}

func TestLocalCloseCompletesOps(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	const size = 1 << 20
	remote := register(t, f.srv, mmapped(t, size), fabric.AccessRemoteRead)
	local := register(t, f.cli, mmapped(t, size), fabric.AccessLocalWrite)
	for i := range 16 {
		if err := cli.PostRead(uint64(i), local, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()
	got := 0
	cs := make([]fabric.Completion, 4)
	for got < 16 {
		n, err := cli.Wait(ctxT(t), cs)
		if err != nil {
			t.Fatalf("wait after %d: %v", got, err)
		}
		for _, c := range cs[:n] {
			if c.Err != nil && !errors.Is(c.Err, fabric.ErrConnClosed) {
				t.Fatalf("completion %+v", c)
			}
		}
		got += n
	}
	if _, err := cli.Wait(ctxT(t), cs); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait: %v", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAcceptCancel(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.ln.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("accept: %v", err)
	}
	f.ln.Close()
	if _, err := f.ln.Accept(context.Background()); err == nil {
		t.Fatal("accept on a closed listener succeeded")
	}
}

func TestDialRefused(t *testing.T) {
	addr := needDevice(t)
	tr, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tr.Dial(ctx, addr+":1", fabric.ConnOptions{}); err == nil {
		t.Fatal("dial to a port nobody listens on succeeded")
	} else {
		t.Logf("dial: %v", err)
	}
}

func TestBusyPoll(t *testing.T) {
	f := newFixtureWith(t, fabric.ConnOptions{}, Options{BusyPoll: true})
	cli, srv := f.connect(fabric.ConnOptions{})
	for i := range 100 {
		if err := cli.Send(ctxT(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Send(ctxT(t), m.Bytes()); err != nil {
			t.Fatal(err)
		}
		m.Release()
		if m, err = cli.Recv(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		m.Release()
	}
}
