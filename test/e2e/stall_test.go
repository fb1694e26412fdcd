package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/initiator"
)

// freezingProxy relays one TCP connection and, once frozen, stops reading
// what the target sends: an initiator that has stopped taking data.
type freezingProxy struct {
	ln     net.Listener
	frozen chan struct{}
	once   sync.Once
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer u.Close()
		go io.Copy(u, c)
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-p.frozen:
				<-time.After(time.Minute) // hold the socket, read nothing
				return
			default:
			}
			n, err := u.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	return p
}

func (p *freezingProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

// TestStalledInitiatorCannotPinTarget: an initiator that stops reading
// its socket while the target writes to it must not hold the target's
// buffers for ever; the target closes that connection after OpTimeout and
// other tenants are served.
func TestStalledInitiatorCannotPinTarget(t *testing.T) {
	if os.Getenv("FERRY_E2E_TRANSPORT") == "rdma" {
		t.Skip("a stalled reader is a TCP matter: RDMA writes need no help from the peer's CPU")
	}
	e := startTarget(t, envOptions{workers: 2, opTimeout: time.Second})
	proxy := newFreezingProxy(t, strings.TrimPrefix(e.addr, "tcp://"))

	ctx := ctxT(t)
	mallory, err := initiator.Dial(ctx, "tcp://"+proxy.ln.Addr().String(), initiator.Options{Tenant: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	defer mallory.Close()
	proxy.freeze()

	// Enough big reads to fill the sockets and take every i/o buffer.
	const reads, blocks = 12, 1024
	var wg sync.WaitGroup
	for range reads {
		buf, err := mallory.NewBuffer(blocks * blockSize)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			mallory.ReadBlocks(rctx, 1, 0, blocks, buf)
		}()
	}

	// Another tenant still gets its blocks.
	victim := e.dial(t, "victim")
	vbuf := buffer(t, victim, blockSize)
	if err := victim.ReadBlocks(ctx, 1, 5, 1, vbuf); err != nil {
		t.Fatalf("victim read while mallory stalls: %v", err)
	}
	if string(vbuf.Bytes()) != string(e.data[5*blockSize:6*blockSize]) {
		t.Fatal("victim read wrong bytes")
	}

	// Mallory's connection was closed by the target: her calls end.
	mallory.Close()
	wg.Wait()
	if _, err := mallory.Stats(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stats on mallory's dead connection: %v", err)
	}
}
