package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/initiator"
	"github.com/ferry-fabric/ferry/internal/hostile"
)

// stillServes fails t unless a fresh client can run an extension.
func stillServes(t *testing.T, e *env) {
	t.Helper()
	c := e.dial(t, "probe")
	ctx := ctxT(t)
	elf, _ := ext.ELF("count")
	x, err := c.Load(ctx, "count", elf)
	if err != nil {
		t.Fatalf("target no longer serves: load: %v", err)
	}
	if _, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: 4, Args: []uint64{64, 0, 5, 0}}, nil); err != nil {
		t.Fatalf("target no longer serves: exec: %v", err)
	}
	c.Unload(ctx, x)
}

func TestHostileExtensions(t *testing.T) {
	e := startTarget(t, envOptions{})
	c := e.dial(t, "mallory")
	ctx := ctxT(t)

	count, _ := ext.ELF("count")
	cases := []struct {
		name     string
		elf      []byte
		verifier bool   // else rejected before the kernel sees it
		mention  string // what the error must name
	}{
		{"garbage", []byte("this is not an ELF file at all, just bytes"), false, "elf"},
		{"truncated", count[:len(count)/2], false, "elf"},
		{"printk", hostile.ELFs["printk"], false, "trace_printk"},
		{"probe_read", hostile.ELFs["probe_read"], false, "probe_read"},
		{"kfunc", hostile.ELFs["kfunc"], false, "kfunc"},
		{"own map", hostile.ELFs["own_map"], false, "map"},
		{"bss", hostile.ELFs["bss"], false, ".bss"},
		{"two programs", hostile.ELFs["two_progs"], false, "program"},
		{"not syscall", hostile.ELFs["not_syscall"], false, "syscall"},
		{"out of bounds", hostile.ELFs["oob"], true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Load(ctx, tc.name, tc.elf)
			if tc.verifier {
				var ve *initiator.VerifierError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want a verifier error", err)
				}
				// The kernel's own words, not just ours.
				if !strings.Contains(ve.Log, "map_value") {
					t.Fatalf("verifier log lacks the kernel's message: %q", ve.Log)
				}
				return
			}
			var re *initiator.RejectedError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a rejection", err)
			}
			if !strings.Contains(strings.ToLower(re.Reason), tc.mention) {
				t.Fatalf("rejection %q does not name %q", re.Reason, tc.mention)
			}
		})
	}
	if got := counter(t, c, "extensions_rejected"); got != uint64(len(cases)) {
		t.Errorf("extensions_rejected = %d, want %d", got, len(cases))
	}
	stillServes(t, e)
}

func TestBadRequests(t *testing.T) {
	e := startTarget(t, envOptions{maxIO: 64 << 10})
	c := e.dial(t, "bad")
	ctx := ctxT(t)
	elf, _ := ext.ELF("count")
	x, err := c.Load(ctx, "count", elf)
	if err != nil {
		t.Fatal(err)
	}
	buf := buffer(t, c, 4*blockSize)
	big := buffer(t, c, 32*blockSize)
	args := []uint64{64, 0, 5, 0}

	cases := []struct {
		name string
		err  error
		want fabric.Status
	}{
		{"exec past the end", func() error {
			_, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, LBA: nsBlocks, Blocks: 1, Args: args}, nil)
			return err
		}(), fabric.StatusOutOfRange},
		{"exec range overflowing", func() error {
			_, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, LBA: 1<<64 - 1, Blocks: 2, Args: args}, nil)
			return err
		}(), fabric.StatusOutOfRange},
		{"read straddling the end", c.ReadBlocks(ctx, 1, nsBlocks-1, 2, buf), fabric.StatusOutOfRange},
		{"write past the end", c.WriteBlocks(ctx, 1, nsBlocks, 1, buf, false), fabric.StatusOutOfRange},
		{"unknown namespace", c.ReadBlocks(ctx, 9, 0, 1, buf), fabric.StatusNoNamespace},
		{"unknown extension", func() error {
			_, err := c.Exec(ctx, &initiator.Extension{Handle: 999, Name: "ghost"}, initiator.ExecRequest{NS: 1, Blocks: 1}, nil)
			return err
		}(), fabric.StatusNoExtension},
		{"flush unknown namespace", c.Flush(ctx, 7), fabric.StatusNoNamespace},
		{"read over the size limit", c.ReadBlocks(ctx, 1, 0, 32, big), fabric.StatusTooLarge},
		{"write over the size limit", c.WriteBlocks(ctx, 1, 0, 32, big, false), fabric.StatusTooLarge},
		{"extension image over the size limit", func() error {
			_, err := c.Load(ctx, "huge", make([]byte, 2<<20))
			return err
		}(), fabric.StatusTooLarge},
	}
	for _, tc := range cases {
		if got := initiator.StatusOf(tc.err); got != tc.want {
			t.Errorf("%s: err = %v, want status %v", tc.name, tc.err, tc.want)
		}
	}
	// None of it changed the blocks.
	if err := c.ReadBlocks(ctx, 1, nsBlocks-4, 4, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf.Bytes()) != string(e.data[(nsBlocks-4)*blockSize:]) {
		t.Fatal("refused requests changed the namespace")
	}
	stillServes(t, e)
}

// rawConn is a transport connection that speaks frames by hand.
type rawConn struct {
	t    *testing.T
	conn fabric.Conn
}

func dialRaw(t *testing.T, e *env) *rawConn {
	tr, _ := transport(t, logger(t))
	_, hostport, _ := strings.Cut(e.addr, "://")
	conn, err := tr.Dial(ctxT(t), hostport, fabric.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); tr.Close() })
	return &rawConn{t: t, conn: conn}
}

func (r *rawConn) roundTrip(frame []byte) *fabric.Response {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.conn.Send(ctx, frame); err != nil {
		r.t.Fatalf("send: %v", err)
	}
	msg, err := r.conn.Recv(ctx)
	if err != nil {
		r.t.Fatalf("recv: %v", err)
	}
	defer msg.Release()
	resp, err := fabric.DecodeResponse(msg.Bytes())
	if err != nil {
		r.t.Fatalf("decode response: %v", err)
	}
	return resp
}

func TestMalformedFrames(t *testing.T) {
	e := startTarget(t, envOptions{})
	r := dialRaw(t, e)

	hello := fabric.AppendRequest(nil, 1, &fabric.Hello{Tenant: "raw"})
	if resp := r.roundTrip(hello); resp.Status != fabric.StatusOK {
		t.Fatalf("hello: %v", resp.Err())
	}
	read := fabric.AppendRequest(nil, 2, &fabric.ReadBlocks{NS: 1, Blocks: 1,
		Dest: fabric.RemoteRegion{Addr: 1, Key: 1, Len: 1000}})
	set := func(b []byte, f func(b []byte)) []byte {
		b = append([]byte(nil), b...)
		f(b)
		return b
	}

	cases := []struct {
		name  string
		frame []byte
		want  fabric.Status
	}{
		{"truncated body", read[:len(read)-3], fabric.StatusBadRequest},
		{"body longer than header says", append(append([]byte(nil), read...), 1, 2, 3), fabric.StatusBadRequest},
		{"length field claims more than a message holds", set(read, func(b []byte) {
			binary.LittleEndian.PutUint32(b[16:], 1<<30)
		}), fabric.StatusBadRequest},
		{"unknown opcode", set(read, func(b []byte) { b[3] = 0x55 }), fabric.StatusUnknownOp},
		{"wrong version", set(read, func(b []byte) { b[2] = 2 }), fabric.StatusVersion},
		{"bad magic", set(read, func(b []byte) { b[0] = 0 }), fabric.StatusBadRequest},
		{"header only", read[:fabric.HeaderSize-1], fabric.StatusBadRequest},
		{"unaligned region", read, fabric.StatusUnaligned},
		{"second hello", fabric.AppendRequest(nil, 3, &fabric.Hello{Tenant: "again"}), fabric.StatusBadRequest},
	}
	for _, tc := range cases {
		resp := r.roundTrip(tc.frame)
		if resp.Status != tc.want {
			t.Errorf("%s: status %v (%s), want %v", tc.name, resp.Status, resp.Message, tc.want)
		}
		if resp.Message == "" {
			t.Errorf("%s: no message says why", tc.name)
		}
	}

	// A message over the agreed size never leaves this side.
	big := make([]byte, r.conn.MaxMessage()+1)
	if err := r.conn.Send(ctxT(t), big); !errors.Is(err, fabric.ErrMessageTooLarge) {
		t.Fatalf("oversized send: err = %v", err)
	}
	// The connection still works after all of it.
	ok := fabric.AppendRequest(nil, 9, &fabric.Stats{})
	if resp := r.roundTrip(ok); resp.Status != fabric.StatusOK {
		t.Fatalf("stats after bad frames: %v", resp.Err())
	}
	stillServes(t, e)
}

func TestRequestBeforeHello(t *testing.T) {
	e := startTarget(t, envOptions{})
	r := dialRaw(t, e)
	resp := r.roundTrip(fabric.AppendRequest(nil, 5, &fabric.Stats{}))
	if resp.Status != fabric.StatusNoSession {
		t.Fatalf("status %v, want %v", resp.Status, fabric.StatusNoSession)
	}
}

// TestDroppedConnection drops connections with requests in flight and
// checks that the target frees what they held and keeps serving.
func TestDroppedConnection(t *testing.T) {
	e := startTarget(t, envOptions{slots: 2, workers: 1})
	elf, _ := ext.ELF("count")

	for i := range 6 {
		c, err := initiator.Dial(ctxT(t), e.addr, initiator.Options{Tenant: "dropper"})
		if err != nil {
			t.Fatal(err)
		}
		x, err := c.Load(ctxT(t), "count", elf)
		if err != nil {
			t.Fatal(err)
		}
		buf, err := c.NewBuffer(64 * blockSize)
		if err != nil {
			t.Fatal(err)
		}
		// Fill the queue with whole-namespace runs and block reads, then
		// drop the connection under them.
		done := make(chan error, 8)
		for j := range 8 {
			go func() {
				var err error
				if j%2 == 0 {
					_, err = c.Exec(context.Background(), x, initiator.ExecRequest{NS: 1, Blocks: nsBlocks,
						Args: []uint64{64, 8, 2, 1 << 62}}, nil)
				} else {
					err = c.ReadBlocks(context.Background(), 1, 0, 64, buf)
				}
				done <- err
			}()
		}
		time.Sleep(time.Duration(i) * 2 * time.Millisecond)
		c.Close()
		for range 8 {
			if err := <-done; err != nil && !errors.Is(err, fabric.ErrConnClosed) {
				t.Fatalf("round %d: request failed with %v, want success or a closed connection", i, err)
			}
		}
		buf.Close()
	}
	// Slots, workers and buffers all came back: more runs than slots work.
	c := e.dial(t, "after")
	x, err := c.Load(ctxT(t), "count", elf)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.Exec(ctxT(t), x, initiator.ExecRequest{NS: 1, Blocks: 8, Args: []uint64{64, 0, 5, 0}}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplyTooLargeForConnection: a client that agreed on the smallest
// message size still gets an answer, a clear refusal, to a request whose
// reply would not fit.
func TestReplyTooLargeForConnection(t *testing.T) {
	e := startTarget(t, envOptions{})
	ctx := ctxT(t)
	c, err := initiator.Dial(ctx, e.addr, initiator.Options{Tenant: "small",
		Conn: fabric.ConnOptions{MaxMessage: fabric.MinMaxMessage, BusyPoll: busyPoll()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Stats(ctx); initiator.StatusOf(err) != fabric.StatusTooLarge {
		t.Fatalf("stats over a %d-byte connection: %v", fabric.MinMaxMessage, err)
	}
	// The connection still serves what fits.
	buf := buffer(t, c, blockSize)
	if err := c.ReadBlocks(ctx, 1, 0, 1, buf); err != nil {
		t.Fatal(err)
	}
}
