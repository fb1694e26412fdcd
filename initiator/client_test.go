package initiator

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
)

func TestDialRefusesBadAddresses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:7420", "needs a scheme"},
		{"udp://127.0.0.1:7420", "unknown transport"},
	} {
		if _, err := Dial(ctx, tc.addr, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial(%q) = %v, want an error saying %q", tc.addr, err, tc.want)
		}
	}
	if _, err := Dial(ctx, "tcp://127.0.0.1:1", Options{QueueDepth: 1 << 16}); err == nil {
		t.Error("queue depth 65536 accepted")
	}
}

func TestDialNoTarget(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial(context.Background(), "tcp://"+addr, Options{}); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

// TestDialSilentPeer: a peer that accepts but never speaks holds Dial only
// until its context ends.
func TestDialSilentPeer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			<-release // silent until the test ends
		}
	}()
	// Were the deadline ignored, Dial would hang here until the test's
	// own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, "tcp://"+l.Addr().String(), Options{}); err == nil {
		t.Fatal("Dial to a silent peer succeeded")
	}
}

func TestStatusOf(t *testing.T) {
	err := &fabric.StatusError{Op: fabric.OpExec, Status: fabric.StatusOutOfRange, Message: "x"}
	if StatusOf(err) != fabric.StatusOutOfRange {
		t.Fatal("StatusOf lost the status")
	}
	if StatusOf(errors.New("plain")) != fabric.StatusOK {
		t.Fatal("StatusOf invented a status")
	}
	var ve error = &VerifierError{Name: "x", Log: "R1 invalid mem access"}
	if !errors.Is(ve, ErrVerifier) || !strings.Contains(ve.Error(), "R1 invalid mem access") {
		t.Fatalf("VerifierError: %v", ve)
	}
	var re error = &RejectedError{Name: "x", Reason: "helper bpf_trace_printk"}
	if !errors.Is(re, ErrRejected) || errors.Is(re, ErrVerifier) {
		t.Fatalf("RejectedError: %v", re)
	}
}
