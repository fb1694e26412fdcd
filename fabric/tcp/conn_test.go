package tcp

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/fabrictest"
)

// TestTransport runs the conformance suite. Beyond it, a remote access
// violation is a protocol violation here: the target fails the
// connection with ErrProtocol and logs a warning naming the peer.
func TestTransport(t *testing.T) {
	var targetLog logBuffer
	p := provider(&targetLog)
	p.CheckViolation = func(t *testing.T, initiator, target fabric.Conn) {
		if err := target.Err(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("target error %v, want ErrProtocol", err)
		}
		peer := "peer=" + initiator.LocalAddr()
		for line := range strings.Lines(targetLog.String()) {
			if strings.Contains(line, peer) && strings.Contains(line, "level=WARN") {
				return
			}
		}
		t.Fatalf("no warning about %s in the target's log:\n%s", peer, targetLog.String())
	}
	fabrictest.TestTransport(t, p)
}

// TestRegionTable checks what the suite cannot see: keys are never zero,
// addresses are not, and every registration has its own table entry.
func TestRegionTable(t *testing.T) {
	tr := New(Options{})
	defer tr.Close()
	buf := make([]byte, 4096)
	for range 1000 {
		r := fabrictest.Register(t, tr, buf, fabric.AccessRemoteRead).Remote()
		if r.Key == 0 || r.Addr == 0 {
			t.Fatalf("remote %+v", r)
		}
	}
	if len(tr.regions) != 1000 {
		t.Fatalf("%d regions in the table", len(tr.regions))
	}
}

// TestPendingReadsOnClose has the peer accept the handshake, then never
// answer and hang up: unlike with a real peer, which may answer some,
// every read in flight must complete with ErrConnClosed.
func TestPendingReadsOnClose(t *testing.T) {
	tr := New(Options{})
	defer tr.Close()
	cli, peer := dialRawServer(t, tr, hello{RecvDepth: 4, MaxMessage: 4096})
	defer cli.Close()

	local := fabrictest.Register(t, tr, make([]byte, 1<<16), fabric.AccessLocalWrite)
	remote := fabric.RemoteRegion{Addr: 1 << 40, Key: 9, Len: 1 << 16}
	const n = 20
	for i := range n {
		if err := cli.PostRead(uint64(i), local, 0, 1<<16, remote, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Drain the requests so that the close is orderly, then hang up.
	peer.readN(t, n*headerSize)
	peer.Close()

	seen := make(map[uint64]bool)
	cs := make([]fabric.Completion, 8)
	for len(seen) < n {
		k, err := cli.Wait(fabrictest.Context(t), cs)
		if err != nil {
			t.Fatalf("wait after %d completions: %v", len(seen), err)
		}
		for _, c := range cs[:k] {
			if !errors.Is(c.Err, fabric.ErrConnClosed) || c.Verb != fabric.VerbRead {
				t.Fatalf("completion %+v", c)
			}
			seen[c.ID] = true
		}
	}
	if _, err := cli.Wait(fabrictest.Context(t), cs); !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("wait after all completions: %v", err)
	}
}

// TestLocalCloseUnansweredRead closes a connection whose peer never
// answers a read: the read completes with ErrConnClosed.
func TestLocalCloseUnansweredRead(t *testing.T) {
	tr := New(Options{})
	defer tr.Close()
	cli, _ := dialRawServer(t, tr, hello{RecvDepth: 4, MaxMessage: 4096})

	local := fabrictest.Register(t, tr, make([]byte, 64), fabric.AccessLocalWrite)
	if err := cli.PostRead(5, local, 0, 64, fabric.RemoteRegion{Addr: 8, Key: 1, Len: 64}, 0); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	var cs [2]fabric.Completion
	n, err := cli.Wait(fabrictest.Context(t), cs[:])
	if err != nil || n != 1 || cs[0].ID != 5 || !errors.Is(cs[0].Err, fabric.ErrConnClosed) {
		t.Fatalf("wait: %d %+v %v", n, cs[0], err)
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
}
