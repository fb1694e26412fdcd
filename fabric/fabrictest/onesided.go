package fabrictest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ferry-fabric/ferry/fabric"
)

func testRegister(t *testing.T, p Provider) {
	tr := p.New(t, Target)
	t.Cleanup(func() { tr.Close() })
	if _, err := tr.Register(nil, fabric.AccessLocalWrite); !errors.Is(err, fabric.ErrRegion) {
		t.Fatalf("empty buffer: %v", err)
	}

	// The same memory may be registered many times, each with its own key.
	const size = 1 << 20
	buf := p.alloc(t, size)
	keys := make(map[uint32]bool)
	for range 100 {
		mr := Register(t, tr, buf, fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
		r := mr.Remote()
		if keys[r.Key] {
			t.Fatalf("key %#x repeated", r.Key)
		}
		keys[r.Key] = true
		if r.Len != size {
			t.Fatalf("remote %+v, want %d bytes", r, size)
		}
	}
}

// testWriteThenSend checks that a message posted after a write is
// received only once the write's bytes are in place.
func testWriteThenSend(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, srv := f.Connect(fabric.ConnOptions{})

	const size = 256 << 10
	dst := Register(t, f.Target, p.alloc(t, size), fabric.AccessLocalWrite|fabric.AccessRemoteWrite)
	src := Register(t, f.Initiator, make([]byte, size), 0)

	for i := range 20 {
		Pattern(src.Bytes(), i)
		if err := cli.PostWrite(uint64(i), src, 0, size, dst.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		if err := cli.Send(Context(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := srv.Recv(Context(t))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst.Bytes(), src.Bytes()) {
			t.Fatalf("round %d: message arrived before the write's bytes", i)
		}
		m.Release()
		c := WaitOne(t, cli)
		if c.ID != uint64(i) || c.Verb != fabric.VerbWrite || c.Len != size || c.Err != nil {
			t.Fatalf("completion %+v", c)
		}
	}
}

func testWriteAtOffset(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	dst := Register(t, f.Target, make([]byte, 100), fabric.AccessRemoteWrite|fabric.AccessRemoteRead)
	src := Register(t, f.Initiator, []byte("0123456789"), 0)

	// Addr arithmetic works as with RDMA: a slice of the remote region.
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
	if c := WaitOne(t, cli); c.Err != nil {
		t.Fatal(c.Err)
	}

	// Wait for the bytes by a read back over the same connection: the
	// read follows the write.
	back := Register(t, f.Initiator, make([]byte, 100), fabric.AccessLocalWrite)
	if err := cli.PostRead(2, back, 0, 100, dst.Remote(), 0); err != nil {
		t.Fatal(err)
	}
	if c := WaitOne(t, cli); c.Err != nil || c.Verb != fabric.VerbRead {
		t.Fatalf("%+v", c)
	}
	want := make([]byte, 100)
	copy(want[43:], "23456")
	if !bytes.Equal(back.Bytes(), want) {
		t.Fatalf("region holds %q", back.Bytes())
	}
}

func testRead(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	src := Register(t, f.Target, p.alloc(t, 1<<20), fabric.AccessRemoteRead)
	Pattern(src.Bytes(), 3)
	dst := Register(t, f.Initiator, make([]byte, 1<<20), fabric.AccessLocalWrite)

	if err := cli.PostRead(7, dst, 100, 500_000, src.Remote(), 1000); err != nil {
		t.Fatal(err)
	}
	c := WaitOne(t, cli)
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

// testReadThenWrite checks that a read posted before a write to the same
// bytes returns the bytes from before the write.
func testReadThenWrite(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, srv := f.Connect(fabric.ConnOptions{})
	const size = 256 << 10
	remote := Register(t, f.Target, make([]byte, size), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	back := Register(t, f.Initiator, make([]byte, size), fabric.AccessLocalWrite)
	src := Register(t, f.Initiator, make([]byte, size), 0)

	for i := range 5 {
		// A message each way orders the target's access to its region
		// after the previous round's operations, as a target's protocol
		// would.
		roundTrip(t, cli, srv, nil)
		Pattern(remote.Bytes(), i)
		old := bytes.Clone(remote.Bytes())
		roundTrip(t, srv, cli, nil)

		Pattern(src.Bytes(), i+100)
		if err := cli.PostRead(1, back, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		if err := cli.PostWrite(2, src, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		WaitOne(t, cli)
		WaitOne(t, cli)
		if !bytes.Equal(back.Bytes(), old) {
			t.Fatalf("round %d: read saw the later write", i)
		}

		// A read after the write sees it.
		if err := cli.PostRead(3, back, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
		WaitOne(t, cli)
		if !bytes.Equal(back.Bytes(), src.Bytes()) {
			t.Fatalf("round %d: read after write missed it", i)
		}
	}
}

func testConcurrentOps(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	ops := fabric.NewOps(cli)

	const (
		workers = 8
		rounds  = 50
		chunk   = 16 << 10
	)
	remote := Register(t, f.Target, make([]byte, workers*chunk),
		fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	local := Register(t, f.Initiator, p.alloc(t, 2*workers*chunk), fabric.AccessLocalWrite)

	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			out := local.Bytes()[2*w*chunk : (2*w+1)*chunk]
			in := local.Bytes()[(2*w+1)*chunk : (2*w+2)*chunk]
			for r := range rounds {
				Pattern(out, w*1000+r)
				err := ops.Write(Context(t), local, 2*w*chunk, chunk, remote.Remote(), uint64(w*chunk))
				if err != nil {
					errc <- err
					return
				}
				err = ops.Read(Context(t), local, (2*w+1)*chunk, chunk, remote.Remote(), uint64(w*chunk))
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

// testLocalArgumentErrors checks that posts a provider can refuse at once
// fail with ErrRegion and leave the connection as it was.
func testLocalArgumentErrors(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	remote := Register(t, f.Target, make([]byte, 64), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	local := Register(t, f.Initiator, make([]byte, 64), fabric.AccessLocalWrite)
	readOnly := Register(t, f.Initiator, make([]byte, 64), 0)
	foreign := Register(t, f.Target, make([]byte, 64), fabric.AccessLocalWrite)
	closed, err := f.Initiator.Register(make([]byte, 64), fabric.AccessLocalWrite)
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
	stillOpen(t, cli, "local argument errors")
}

// testRegionViolation posts one-sided operations the target must refuse,
// and checks that they break that connection with an error, on the side
// p.Violation names, and only that connection.
func testRegionViolation(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	rw := Register(t, f.Target, make([]byte, 4096), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	ro := Register(t, f.Target, make([]byte, 4096), fabric.AccessRemoteRead)
	wo := Register(t, f.Target, make([]byte, 4096), fabric.AccessRemoteWrite)
	local := Register(t, f.Initiator, make([]byte, 8192), fabric.AccessLocalWrite)

	unknown := rw.Remote()
	for k := uint32(0x5a5a00); ; k++ {
		unknown.Key = rw.Remote().Key ^ k
		if unknown.Key != ro.Remote().Key && unknown.Key != wo.Remote().Key {
			break
		}
	}
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
			cli, srv := f.Connect(fabric.ConnOptions{})
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
			n, err := cli.Wait(Context(t), cs[:])
			cerr, serr := WaitDone(t, cli), WaitDone(t, srv)
			t.Logf("initiator: %v; target: %v", cerr, serr)
			switch p.Violation {
			case AtInitiator:
				if err != nil || n != 1 {
					t.Fatalf("wait: %d %v", n, err)
				}
				if !errors.Is(cs[0].Err, fabric.ErrRegion) || !errors.Is(cs[0].Err, fabric.ErrConnClosed) {
					t.Fatalf("completion error %v, want ErrRegion and ErrConnClosed", cs[0].Err)
				}
			case AtTarget:
				if !errors.Is(serr, fabric.ErrRegion) {
					t.Fatalf("target error %v, want ErrRegion", serr)
				}
				// A write may have been handed to the network before the
				// break, and then completed without error.
				failed := n == 1 && errors.Is(cs[0].Err, fabric.ErrConnClosed)
				if !failed && !(tc.write && err == nil && n == 1 && cs[0].Err == nil) {
					t.Fatalf("completion %d %+v %v", n, cs[0], err)
				}
			}
			if err := cli.PostWrite(2, local, 0, 8, rw.Remote(), 0); !errors.Is(err, fabric.ErrConnClosed) {
				t.Fatalf("post on broken connection: %v", err)
			}
			if p.CheckViolation != nil {
				p.CheckViolation(t, cli, srv)
			}

			// The listener still serves.
			cli2, srv2 := f.Connect(fabric.ConnOptions{})
			roundTrip(t, cli2, srv2, []byte("still here"))
		})
	}
}

// testPendingOpsOnClose has the peer close while many one-sided
// operations are in flight: each completes once, and those that did not
// make it complete with ErrConnClosed.
func testPendingOpsOnClose(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, srv := f.Connect(fabric.ConnOptions{})
	const size = 1 << 20
	remote := Register(t, f.Target, p.alloc(t, size), fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	local := Register(t, f.Initiator, p.alloc(t, size), fabric.AccessLocalWrite)

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
		k, err := cli.Wait(Context(t), cs)
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
	if _, err := cli.Wait(Context(t), cs); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait after all completions: %v", err)
	}
	if _, err := cli.Recv(Context(t)); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("recv: %v", err)
	}
	err := cli.PostRead(99, local, 0, 8, remote.Remote(), 0)
	if !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("post read on a closed connection: %v", err)
	}
}

func testLocalCloseCompletesOps(t *testing.T, p Provider) {
	f := NewPair(t, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	const size = 1 << 20
	remote := Register(t, f.Target, p.alloc(t, size), fabric.AccessRemoteRead)
	local := Register(t, f.Initiator, p.alloc(t, size), fabric.AccessLocalWrite)
	for i := range 16 {
		if err := cli.PostRead(uint64(i), local, 0, size, remote.Remote(), 0); err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()

	got := 0
	cs := make([]fabric.Completion, 4)
	for got < 16 {
		n, err := cli.Wait(Context(t), cs)
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
	if _, err := cli.Wait(Context(t), cs); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait: %v", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
}
