package rdma

import (
	"errors"
	"testing"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
)

// These tests need no device.

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{}, {Credits: 1}, {Credits: 1 << 20, Acked: 0xffff}, {Credits: 3, Acked: 7, Flags: flagCredit},
	} {
		b := make([]byte, headerSize)
		h.put(b)
		got, err := decodeHeader(b)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if got != h {
			t.Fatalf("got %+v, want %+v", got, h)
		}
	}
}

func TestHeaderRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":                 {1, 0, 0, 0, 0, 0, 0},
		"unknown flag":          {0, 0, 0, 0, 0, 0, 2, 0},
		"reserved byte":         {0, 0, 0, 0, 0, 0, 0, 1},
		"credit with payload":   {1, 0, 0, 0, 0, 0, 1, 0, 'x'},
		"credit returning none": {0, 0, 0, 0, 0, 0, 1, 0},
	} {
		if _, err := decodeHeader(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", name, err)
		}
	}
}

func TestHello(t *testing.T) {
	b := hello{RecvDepth: 64, MaxMessage: 4096}.bytes()
	// The CM pads private data with zeros.
	padded := append(b, make([]byte, 40)...)
	h, err := decodeHello(padded)
	if err != nil || h.RecvDepth != 64 || h.MaxMessage != 4096 {
		t.Fatalf("%+v %v", h, err)
	}
	for name, mod := range map[string]func([]byte){
		"magic":     func(b []byte) { b[0] ^= 1 },
		"version":   func(b []byte) { b[4] = 9 },
		"reserved":  func(b []byte) { b[6] = 1 },
		"depth 0":   func(b []byte) { clear(b[8:12]) },
		"small max": func(b []byte) { b[12], b[13] = 1, 0 },
	} {
		c := hello{RecvDepth: 64, MaxMessage: 4096}.bytes()
		mod(c)
		if _, err := decodeHello(c); !errors.Is(err, ErrHandshake) {
			t.Errorf("%s: %v, want ErrHandshake", name, err)
		}
	}
	if _, err := decodeHello(b[:15]); !errors.Is(err, ErrHandshake) {
		t.Errorf("short: %v", err)
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'})
	f.Add([]byte{1, 0, 0, 0, 3, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			return
		}
		out := make([]byte, headerSize)
		h.put(out)
		if string(out) != string(b[:headerSize]) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, h, out)
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(hello{RecvDepth: 64, MaxMessage: 4096}.bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			return
		}
		if h.RecvDepth == 0 || h.RecvDepth > maxRecvDepth || h.MaxMessage < fabric.MinMaxMessage {
			t.Fatalf("accepted %+v", h)
		}
	})
}

// TestCreditDue walks the credit-only message rule through the cases
// doc.go argues about.
func TestCreditDue(t *testing.T) {
	c := &conn{depth: 8}
	if c.creditDue() {
		t.Fatal("due with nothing owed")
	}

	// One release while the peer still has plenty: it waits to ride.
	c.outstanding, c.owed = 1, 1
	if c.creditDue() {
		t.Fatal("due for one credit with the peer at 7")
	}
	// Half the depth owed.
	c.outstanding, c.owed = 4, 4
	if !c.creditDue() {
		t.Fatal("not due with half the depth owed")
	}
	// The peer down to a quarter, one owed.
	c.outstanding, c.owed = 6, 1
	if !c.creditDue() {
		t.Fatal("not due with the peer at 2 of 8")
	}
	// The last credit-only message is not yet acknowledged: the reserve
	// buffer may still be in use, so nothing goes out...
	c.cmSent = 1
	if c.creditDue() {
		t.Fatal("due with the reserve buffer unacknowledged")
	}
	// ...until the peer's next message says it is posted again.
	c.peerAck = 1
	if !c.creditDue() {
		t.Fatal("not due after the acknowledgement")
	}
	// Counters wrap.
	c.cmSent, c.peerAck = 0, 0xffff
	if c.creditDue() {
		t.Fatal("due across the wrap with one unacknowledged")
	}

	// A depth of one: every release is due.
	d := &conn{depth: 1, outstanding: 1, owed: 1}
	if !d.creditDue() {
		t.Fatal("depth 1: not due")
	}
}

// TestNoDevice checks the host, which has no RDMA: New fails with
// ErrNotSupported, the discovery functions fail cleanly.
func TestNoDevice(t *testing.T) {
	if l, err := cgo.GetDevices(); err == nil {
		l.Close()
		t.Skip("this machine has an RDMA device")
	}
	if _, err := New(Options{}); !errors.Is(err, fabric.ErrNotSupported) {
		t.Fatalf("New: %v, want ErrNotSupported", err)
	}
	if _, err := DeviceForNetdev("lo"); err == nil {
		t.Fatal("DeviceForNetdev(lo) succeeded")
	}
	if _, err := DeviceForNetdev("no-such-netdev"); err == nil {
		t.Fatal("DeviceForNetdev of a missing interface succeeded")
	}
	if links, err := ListLinks(); err == nil && len(links) > 0 {
		t.Fatalf("links %+v on a machine without devices", links)
	} else {
		t.Logf("ListLinks: %v", err)
	}
}
