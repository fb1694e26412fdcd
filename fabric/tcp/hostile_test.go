package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/fabrictest"
)

// rawServer is a plain TCP listener for playing a hostile or silent peer.
type rawServer struct{ ln net.Listener }

func newRawServer(t testing.TB) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &rawServer{ln}
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) accept(t testing.TB) *rawPeer {
	t.Helper()
	nc, err := s.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{nc}
}

// rawPeer speaks the protocol by hand.
type rawPeer struct{ net.Conn }

func dialRaw(t testing.TB, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawPeer{nc}
}

// hello sends h and reads the other side's hello.
func (p *rawPeer) hello(t testing.TB, h hello) hello {
	t.Helper()
	var b [helloSize]byte
	h.put(b[:])
	p.write(t, b[:])
	got, err := decodeHello(p.readN(t, helloSize))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// dialRawServer dials a raw server that answers the handshake with h.
func dialRawServer(t *testing.T, tr *Transport, h hello) (fabric.Conn, *rawPeer) {
	t.Helper()
	raw := newRawServer(t)
	peerc := make(chan *rawPeer, 1)
	go func() {
		nc, err := raw.ln.Accept()
		if err != nil {
			peerc <- nil
			return
		}
		var b [helloSize]byte
		h.put(b[:])
		nc.Write(b[:])
		peerc <- &rawPeer{nc}
	}()
	cli, err := tr.Dial(fabrictest.Context(t), raw.addr(), fabric.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	peer := <-peerc
	t.Cleanup(func() { peer.Close() })
	peer.readN(t, helloSize)
	return cli, peer
}

func (p *rawPeer) write(t testing.TB, b []byte) {
	t.Helper()
	if _, err := p.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (p *rawPeer) frame(t testing.TB, h header, payload []byte) {
	t.Helper()
	var b [headerSize]byte
	h.put(b[:])
	p.write(t, append(b[:], payload...))
}

func (p *rawPeer) readN(t testing.TB, n int) []byte {
	t.Helper()
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(p, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// expectClosed waits for the other side to close the stream.
func (p *rawPeer) expectClosed(t testing.TB) {
	t.Helper()
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
}

func TestHostilePeers(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{RecvDepth: 2, MaxMessage: 1024})
	good := hello{RecvDepth: 4, MaxMessage: 4096}
	rw := fabrictest.Register(t, f.Target, make([]byte, 4096), fabric.AccessRemoteWrite|fabric.AccessRemoteRead)

	for _, tc := range []struct {
		name string
		// handshake says whether the hostile part comes after a good hello.
		handshake bool
		do        func(t *testing.T, p *rawPeer)
		want      error
	}{
		{"bad magic", false, func(t *testing.T, p *rawPeer) {
			var b [helloSize]byte
			good.put(b[:])
			b[0] ^= 0xff
			p.write(t, b[:])
		}, nil},
		{"bad version", false, func(t *testing.T, p *rawPeer) {
			var b [helloSize]byte
			good.put(b[:])
			b[4] = 9
			p.write(t, b[:])
		}, nil},
		{"zero depth", false, func(t *testing.T, p *rawPeer) {
			var b [helloSize]byte
			hello{RecvDepth: 0, MaxMessage: 4096}.put(b[:])
			p.write(t, b[:])
		}, nil},
		{"absurd max message", false, func(t *testing.T, p *rawPeer) {
			var b [helloSize]byte
			hello{RecvDepth: 4, MaxMessage: 1 << 31}.put(b[:])
			p.write(t, b[:])
		}, nil},
		{"short hello", false, func(t *testing.T, p *rawPeer) {
			p.write(t, []byte{0x54, 0x59})
			p.Conn.(*net.TCPConn).CloseWrite()
		}, nil},
		{"absurd send length", true, func(t *testing.T, p *rawPeer) {
			p.frame(t, header{Type: frameSend, Length: 1 << 31}, nil)
		}, ErrProtocol},
		{"send over max message", true, func(t *testing.T, p *rawPeer) {
			p.frame(t, header{Type: frameSend, Length: 1025}, make([]byte, 1025))
		}, ErrProtocol},
		{"send without credit", true, func(t *testing.T, p *rawPeer) {
			for range 3 {
				p.frame(t, header{Type: frameSend, Length: 1}, []byte{1})
			}
		}, ErrProtocol},
		{"absurd write length", true, func(t *testing.T, p *rawPeer) {
			r := rw.Remote()
			p.frame(t, header{Type: frameWrite, Length: 1<<32 - 1, Key: r.Key, Addr: r.Addr}, nil)
		}, fabric.ErrRegion},
		{"write address wraps", true, func(t *testing.T, p *rawPeer) {
			r := rw.Remote()
			p.frame(t, header{Type: frameWrite, Length: 16, Key: r.Key, Addr: 1<<64 - 8}, nil)
		}, fabric.ErrRegion},
		{"absurd read length", true, func(t *testing.T, p *rawPeer) {
			r := rw.Remote()
			p.frame(t, header{Type: frameReadReq, Length: 1 << 30, Key: r.Key, Addr: r.Addr}, nil)
		}, fabric.ErrRegion},
		{"unsolicited read response", true, func(t *testing.T, p *rawPeer) {
			p.frame(t, header{Type: frameReadResp, Length: 8}, make([]byte, 8))
		}, ErrProtocol},
		{"credits never owed", true, func(t *testing.T, p *rawPeer) {
			p.frame(t, header{Type: frameCredit, Credits: 1}, nil)
		}, ErrProtocol},
		{"unknown frame type", true, func(t *testing.T, p *rawPeer) {
			p.write(t, append([]byte{0x42}, make([]byte, headerSize-1)...))
		}, ErrProtocol},
		{"reserved bits", true, func(t *testing.T, p *rawPeer) {
			b := make([]byte, headerSize)
			b[0], b[1] = byte(frameCredit), 1
			p.write(t, b)
		}, ErrProtocol},
		{"truncated frame", true, func(t *testing.T, p *rawPeer) {
			p.write(t, make([]byte, headerSize/2))
			p.Conn.(*net.TCPConn).CloseWrite()
		}, io.ErrUnexpectedEOF},
		{"truncated payload", true, func(t *testing.T, p *rawPeer) {
			p.frame(t, header{Type: frameSend, Length: 100}, make([]byte, 10))
			p.Conn.(*net.TCPConn).CloseWrite()
		}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, f.Listener.Addr())
			var srv fabric.Conn
			if tc.handshake {
				got := p.hello(t, good)
				if got.RecvDepth != 2 || got.MaxMessage != 1024 {
					t.Fatalf("server hello %+v", got)
				}
				var err error
				if srv, err = f.Listener.Accept(fabrictest.Context(t)); err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
			}
			tc.do(t, p)
			p.expectClosed(t)
			if srv != nil {
				err := fabrictest.WaitDone(t, srv)
				if !errors.Is(err, tc.want) {
					t.Fatalf("server error %v, want %v", err, tc.want)
				}
			}

			// The server still serves a proper client.
			cli, srv2 := f.Connect(fabric.ConnOptions{})
			if err := cli.Send(fabrictest.Context(t), []byte("ok")); err != nil {
				t.Fatal(err)
			}
			m, err := srv2.Recv(fabrictest.Context(t))
			if err != nil {
				t.Fatal(err)
			}
			m.Release()
		})
	}
}

// TestSilentPeerHandshake checks that a peer that never says hello holds
// up neither Accept of others nor Dial beyond its context.
func TestSilentPeerHandshake(t *testing.T) {
	f := newFixture(t, fabric.ConnOptions{})
	silent := dialRaw(t, f.Listener.Addr())

	// Others are served while the silent one waits.
	cli, srv := f.Connect(fabric.ConnOptions{})
	cli.Close()
	srv.Close()

	raw := newRawServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := f.Initiator.Dial(ctx, raw.addr(), fabric.ConnOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial a silent server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dial took %v", d)
	}
	silent.Close()
}

func TestDialBadHandshake(t *testing.T) {
	raw := newRawServer(t)
	tr := New(Options{})
	defer tr.Close()
	go func() {
		nc, err := raw.ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		io.Copy(io.Discard, nc)
	}()
	_, err := tr.Dial(fabrictest.Context(t), raw.addr(), fabric.ConnOptions{})
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("dial: %v, want ErrHandshake", err)
	}
}
