package rdma

import (
	"testing"

	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/fabrictest"
)

// TestTransport runs the conformance suite on a device (inside the VM).
func TestTransport(t *testing.T) {
	fabrictest.TestTransport(t, provider(t, Options{}))
}

// TestRegisterAddr checks that a region is described to the peer by its
// virtual address, as RDMA applications expect.
func TestRegisterAddr(t *testing.T) {
	p := provider(t, Options{})
	tr := p.New(t, fabrictest.Target)
	t.Cleanup(func() { tr.Close() })
	buf := mmapped(t, 1<<20)
	r := fabrictest.Register(t, tr, buf, fabric.AccessRemoteRead|fabric.AccessRemoteWrite).Remote()
	if r.Len != 1<<20 || r.Addr != uint64(addrOf(buf)) {
		t.Fatalf("remote %+v, buffer at %#x", r, addrOf(buf))
	}
}

// TestBusyPoll exchanges messages with the transports spinning on their
// completion queues rather than sleeping on completion channels.
func TestBusyPoll(t *testing.T) {
	f := fabrictest.NewPair(t, provider(t, Options{BusyPoll: true}), fabric.ConnOptions{})
	cli, srv := f.Connect(fabric.ConnOptions{})
	for i := range 100 {
		if err := cli.Send(fabrictest.Context(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := srv.Recv(fabrictest.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Send(fabrictest.Context(t), m.Bytes()); err != nil {
			t.Fatal(err)
		}
		m.Release()
		if m, err = cli.Recv(fabrictest.Context(t)); err != nil {
			t.Fatal(err)
		}
		m.Release()
	}
}
