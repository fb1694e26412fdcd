package initiator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/tcp"
	"github.com/ferry-fabric/ferry/rdma"
)

// Options configure a Client. Zero values take defaults.
type Options struct {
	// Tenant names this client to the target; default "default".
	Tenant string
	// QueueDepth is the number of requests in flight; the target may grant
	// fewer. Default 32.
	QueueDepth int
	// Transport overrides the provider chosen by the address scheme. The
	// Client does not close a Transport it was given.
	Transport fabric.Transport
	Conn      fabric.ConnOptions
	Logger    *slog.Logger
}

// Client is a connection to one target.
type Client struct {
	transport fabric.Transport
	ownsT     bool
	conn      fabric.Conn
	log       *slog.Logger
	hello     *fabric.HelloReply
	depth     chan struct{}
	nextID    atomic.Uint64
	traffic   struct{ sent, received, sentBytes, receivedBytes atomic.Uint64 }

	mu      sync.Mutex
	pending map[uint64]*call
	err     error // set once the connection is gone
	done    chan struct{}
}

// call is one request waiting for its reply.
type call struct {
	op    fabric.Op
	reply chan *fabric.Response
	// bufs are the buffers the target may touch until the reply.
	bufs []*Buffer
}

// Dial connects to a target and opens a session.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.Tenant == "" {
		opts.Tenant = "default"
	}
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = 32
	}
	if opts.QueueDepth > 1<<15 {
		return nil, fmt.Errorf("dial %s: queue depth %d too large", addr, opts.QueueDepth)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	scheme, hostport, ok := strings.Cut(addr, "://")
	if !ok {
		return nil, fmt.Errorf("dial %s: address needs a scheme, as in tcp://host:port", addr)
	}

	c := &Client{
		transport: opts.Transport,
		log:       opts.Logger.With("target", addr),
		pending:   make(map[uint64]*call),
		done:      make(chan struct{}),
	}
	if c.transport == nil {
		t, err := newTransport(scheme, opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		c.transport, c.ownsT = t, true
	} else if c.transport.Name() != scheme {
		return nil, fmt.Errorf("dial %s: transport %s given for scheme %s", addr, c.transport.Name(), scheme)
	}

	// Every reply of a full queue must find a posted receive buffer.
	copts := opts.Conn.WithDefaults()
	if copts.RecvDepth < opts.QueueDepth {
		copts.RecvDepth = opts.QueueDepth
	}
	conn, err := c.transport.Dial(ctx, hostport, copts)
	if err != nil {
		c.closeTransport()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c.conn = conn
	c.depth = make(chan struct{}, opts.QueueDepth)
	go c.receive()

	resp, err := c.do(ctx, &fabric.Hello{Tenant: opts.Tenant, QueueDepth: uint16(opts.QueueDepth)})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: hello: %w", addr, err)
	}
	c.hello = resp.Body.(*fabric.HelloReply)
	if granted := int(c.hello.QueueDepth); granted > 0 && granted < opts.QueueDepth {
		// Shrink the window by keeping the difference taken for good.
		for i := granted; i < opts.QueueDepth; i++ {
			c.depth <- struct{}{}
		}
	}
	c.log.Debug("session open", "queue_depth", c.hello.QueueDepth, "namespaces", len(c.hello.Namespaces))
	return c, nil
}

func newTransport(scheme string, log *slog.Logger) (fabric.Transport, error) {
	switch scheme {
	case "tcp":
		return tcp.New(tcp.Options{Logger: log}), nil
	case "rdma":
		return rdma.New(rdma.Options{Logger: log})
	}
	return nil, fmt.Errorf("unknown transport scheme %q", scheme)
}

func (c *Client) closeTransport() {
	if c.ownsT {
		c.transport.Close()
	}
}

// Traffic counts the two-sided messages of this client: requests sent and
// replies received, with their bytes. Bulk data moves by one-sided
// operations and is not in these counts.
type Traffic struct {
	Sent, Received           uint64
	SentBytes, ReceivedBytes uint64
}

// Traffic returns the message counts so far.
func (c *Client) Traffic() Traffic {
	return Traffic{
		Sent: c.traffic.sent.Load(), Received: c.traffic.received.Load(),
		SentBytes: c.traffic.sentBytes.Load(), ReceivedBytes: c.traffic.receivedBytes.Load(),
	}
}

// Namespaces lists what the target serves.
func (c *Client) Namespaces() []fabric.NamespaceInfo { return c.hello.Namespaces }

// Namespace returns one namespace's description.
func (c *Client) Namespace(id uint32) (fabric.NamespaceInfo, bool) {
	for _, ns := range c.hello.Namespaces {
		if ns.ID == id {
			return ns, true
		}
	}
	return fabric.NamespaceInfo{}, false
}

// Limits returns the target's per-request bounds: bytes per read or write,
// and bytes per exec result.
func (c *Client) Limits() (maxIO, maxResult int) {
	return int(c.hello.MaxIOBytes), int(c.hello.MaxResultBytes)
}

// receive delivers replies to their calls until the connection breaks.
func (c *Client) receive() {
	defer close(c.done)
	for {
		msg, err := c.conn.Recv(context.Background())
		if err != nil {
			c.fail(err)
			return
		}
		c.traffic.received.Add(1)
		c.traffic.receivedBytes.Add(uint64(len(msg.Bytes())))
		resp, err := fabric.DecodeResponse(msg.Bytes())
		msg.Release()
		if err != nil {
			c.fail(fmt.Errorf("undecodable reply: %w", err))
			c.conn.Close()
			return
		}

		c.mu.Lock()
		cl := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if cl == nil {
			// The target answers id 0 to frames it could not decode.
			c.log.Warn("reply to no request", "id", resp.ID, "status", resp.Status, "msg", resp.Message)
			continue
		}
		if resp.Op != cl.op {
			// The call still counts as pending until fail releases it.
			c.mu.Lock()
			c.pending[resp.ID] = cl
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: %s reply to %s request %d", fabric.ErrMalformed, resp.Op, cl.op, resp.ID))
			c.conn.Close()
			return
		}
		c.finish(cl)
		cl.reply <- resp
	}
}

// finish releases what a call held once the target is done with it.
func (c *Client) finish(cl *call) {
	for _, b := range cl.bufs {
		b.rootBuf().inUse.Done()
	}
	<-c.depth
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		c.log.Debug("connection lost", "err", err)
	}
	for id, cl := range c.pending {
		delete(c.pending, id)
		c.finish(cl)
		close(cl.reply)
	}
}

// do sends req and waits for its reply. bufs are buffers the target may
// touch until it replies.
func (c *Client) do(ctx context.Context, req fabric.Request, bufs ...*Buffer) (*fabric.Response, error) {
	select {
	case c.depth <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.connErr()
	}

	id := c.nextID.Add(1)
	cl := &call{op: req.Op(), reply: make(chan *fabric.Response, 1), bufs: bufs}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		<-c.depth
		return nil, c.connErr()
	}
	for _, b := range bufs {
		b.rootBuf().inUse.Add(1)
	}
	c.pending[id] = cl
	c.mu.Unlock()

	frame := fabric.AppendRequest(make([]byte, 0, 128), id, req)
	if err := c.conn.Send(ctx, frame); err != nil {
		c.mu.Lock()
		if c.pending[id] == cl {
			delete(c.pending, id)
			c.finish(cl)
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("send %s: %w", req.Op(), err)
	}
	c.traffic.sent.Add(1)
	c.traffic.sentBytes.Add(uint64(len(frame)))

	select {
	case resp, ok := <-cl.reply:
		if !ok {
			return nil, c.connErr()
		}
		if err := resp.Err(); err != nil {
			return resp, err
		}
		return resp, nil
	case <-ctx.Done():
		// The call stays registered: its buffers are released when the
		// target replies or the connection ends.
		return nil, ctx.Err()
	}
}

func (c *Client) connErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, fabric.ErrConnClosed) {
		return c.err
	}
	return fmt.Errorf("%w: %w", fabric.ErrConnClosed, c.err)
}

// Close ends the session. Calls in flight fail with an error wrapping
// fabric.ErrConnClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	c.closeTransport()
	return err
}

// Extension is an extension loaded on the target.
type Extension struct {
	Handle  uint32
	Name    string
	Program string
	Insns   int
}

// Load sends an extension's ELF image to the target, which checks,
// verifies and loads it. The image is staged in a registered buffer that
// the target pulls from; Load returns only once the target is done with
// that buffer, even when ctx ends first.
func (c *Client) Load(ctx context.Context, name string, elf []byte) (*Extension, error) {
	if len(elf) == 0 {
		return nil, fmt.Errorf("load %s: empty image", name)
	}
	buf, err := c.NewBuffer(len(elf))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	defer buf.Close()
	copy(buf.mem, elf)

	resp, err := c.do(ctx, &fabric.Load{Name: name, ELF: buf.mr.Remote()}, buf)
	if err != nil {
		var se *fabric.StatusError
		if errors.As(err, &se) {
			switch se.Status {
			case fabric.StatusVerifier:
				return nil, &VerifierError{Name: name, Log: se.Message}
			case fabric.StatusRejected:
				return nil, &RejectedError{Name: name, Reason: se.Message}
			}
		}
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	r := resp.Body.(*fabric.LoadReply)
	return &Extension{Handle: r.Handle, Name: name, Program: r.Program, Insns: int(r.Insns)}, nil
}

// Unload drops a loaded extension on the target.
func (c *Client) Unload(ctx context.Context, x *Extension) error {
	if _, err := c.do(ctx, &fabric.Unload{Handle: x.Handle}); err != nil {
		return fmt.Errorf("unload %s: %w", x.Name, err)
	}
	return nil
}

// ExecRequest says where an extension runs and with what arguments.
type ExecRequest struct {
	NS     uint32
	LBA    uint64
	Blocks uint32
	Args   []uint64
}

// ExecResult is what an extension produced.
type ExecResult struct {
	// Out holds the extension's scalar outputs.
	Out [fabric.MaxOut]uint64
	// Result is the part of the result buffer the extension filled.
	Result []byte
	// StorageTime and BpfTime are the target's time in storage reads and
	// in the extension.
	StorageTime time.Duration
	BpfTime     time.Duration
}

// Exec runs x over a range of blocks. The target writes the extension's
// result into result (which may be nil when only Out is wanted).
func (c *Client) Exec(ctx context.Context, x *Extension, req ExecRequest, result *Buffer) (*ExecResult, error) {
	if len(req.Args) > fabric.MaxArgs {
		return nil, fmt.Errorf("exec %s: %d arguments, at most %d", x.Name, len(req.Args), fabric.MaxArgs)
	}
	msg := &fabric.Exec{Handle: x.Handle, NS: req.NS, LBA: req.LBA, Blocks: req.Blocks, Args: req.Args}
	var bufs []*Buffer
	if result != nil {
		r, err := result.region(result.Len())
		if err != nil {
			return nil, fmt.Errorf("exec %s: %w", x.Name, err)
		}
		msg.Result = r
		bufs = append(bufs, result)
	}

	resp, err := c.do(ctx, msg, bufs...)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", x.Name, err)
	}
	r := resp.Body.(*fabric.ExecReply)
	out := &ExecResult{Out: r.Out, StorageTime: time.Duration(resp.StorageNs), BpfTime: time.Duration(resp.BpfNs)}
	if result != nil {
		if int(r.ResultLen) > result.Len() {
			return nil, fmt.Errorf("exec %s: target reports %d result bytes for a %d-byte buffer",
				x.Name, r.ResultLen, result.Len())
		}
		out.Result = result.mem[:r.ResultLen]
	}
	return out, nil
}

// ReadBlocks reads blocks of a namespace into the start of buf.
func (c *Client) ReadBlocks(ctx context.Context, ns uint32, lba uint64, blocks uint32, buf *Buffer) error {
	n, err := c.ioBytes(ns, blocks)
	if err != nil {
		return fmt.Errorf("read blocks: %w", err)
	}
	r, err := buf.region(n)
	if err != nil {
		return fmt.Errorf("read blocks: %w", err)
	}
	if _, err := c.do(ctx, &fabric.ReadBlocks{NS: ns, LBA: lba, Blocks: blocks, Dest: r}, buf); err != nil {
		return fmt.Errorf("read %d blocks at %d of namespace %d: %w", blocks, lba, ns, err)
	}
	return nil
}

// WriteBlocks writes the start of buf to blocks of a namespace. When it
// returns nil the target has stored the data; with fua it is durable.
func (c *Client) WriteBlocks(ctx context.Context, ns uint32, lba uint64, blocks uint32, buf *Buffer, fua bool) error {
	n, err := c.ioBytes(ns, blocks)
	if err != nil {
		return fmt.Errorf("write blocks: %w", err)
	}
	r, err := buf.region(n)
	if err != nil {
		return fmt.Errorf("write blocks: %w", err)
	}
	req := &fabric.WriteBlocks{NS: ns, LBA: lba, Blocks: blocks, Src: r, FUA: fua}
	if _, err := c.do(ctx, req, buf); err != nil {
		return fmt.Errorf("write %d blocks at %d of namespace %d: %w", blocks, lba, ns, err)
	}
	return nil
}

// ioBytes sizes a block request; an unknown namespace is left for the
// target to refuse.
func (c *Client) ioBytes(ns uint32, blocks uint32) (int, error) {
	info, ok := c.Namespace(ns)
	if !ok {
		return 0, nil
	}
	return int(uint64(blocks) * uint64(info.BlockSize)), nil
}

// Flush makes every acknowledged write to ns durable.
func (c *Client) Flush(ctx context.Context, ns uint32) error {
	if _, err := c.do(ctx, &fabric.Flush{NS: ns}); err != nil {
		return fmt.Errorf("flush namespace %d: %w", ns, err)
	}
	return nil
}

// Stats returns the target's counters.
func (c *Client) Stats(ctx context.Context) ([]fabric.Counter, error) {
	resp, err := c.do(ctx, &fabric.Stats{})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return resp.Body.(*fabric.StatsReply).Counters, nil
}
