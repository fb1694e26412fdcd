package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
)

// session serves one connection.
type session struct {
	s      *Server
	conn   fabric.Conn
	ops    *fabric.Ops
	logp   atomic.Pointer[slog.Logger] // gains the tenant at hello
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// slots bounds this connection's requests in flight.
	slots chan struct{}

	mu     sync.Mutex
	tenant *tenant
}

func (s *Server) newSession(conn fabric.Conn) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{
		s:      s,
		conn:   conn,
		ops:    fabric.NewOpsTimeout(conn, s.cfg.OpTimeout),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		slots:  make(chan struct{}, s.cfg.QueueDepth),
	}
	sess.logp.Store(s.log.With("peer", conn.RemoteAddr()))
	s.conns[sess] = struct{}{}
	s.stats.connections.Add(1)
	return sess
}

func (c *session) log() *slog.Logger { return c.logp.Load() }

func (c *session) serve() {
	defer close(c.done)
	c.log().Info("connection open")

	// Work of a connection that is gone is abandoned between steps.
	go func() {
		<-c.conn.Done()
		c.cancel()
	}()

	var wg sync.WaitGroup
	err := c.loop(&wg)
	wg.Wait()
	c.cancel()
	c.conn.Close()

	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	if err != nil && !errors.Is(err, fabric.ErrConnClosed) {
		c.log().Warn("connection closed", "err", err)
	} else {
		c.log().Info("connection closed")
	}
}

func (c *session) loop(wg *sync.WaitGroup) error {
	for {
		// Wait for room before taking a message: unreleased receive
		// buffers withhold the initiator's credits, which is the
		// back-pressure.
		select {
		case c.slots <- struct{}{}:
		case <-c.conn.Done():
			return c.conn.Err()
		}
		msg, err := c.conn.Recv(c.ctx)
		if err != nil {
			return err
		}

		h, req, err := fabric.DecodeRequest(msg.Bytes())
		msg.Release()
		if err != nil {
			<-c.slots
			c.s.stats.failures.Add(1)
			// Answer with whatever id the header gave (0 if none) so the
			// initiator hears why; the connection itself stays usable.
			c.log().Warn("undecodable request", "id", h.ID, "err", err)
			c.reply(&fabric.Response{Op: h.Op, ID: h.ID, Status: decodeStatus(err), Message: err.Error()})
			continue
		}
		c.s.stats.requests[h.Op].Add(1)

		if !c.s.begin() {
			<-c.slots
			c.reply(&fabric.Response{Op: h.Op, ID: h.ID, Status: fabric.StatusShuttingDown,
				Message: "target is shutting down"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.s.inflight.Done()
			defer func() { <-c.slots }()
			c.handle(h, req)
		}()
	}
}

func decodeStatus(err error) fabric.Status {
	switch {
	case errors.Is(err, fabric.ErrVersion):
		return fabric.StatusVersion
	case errors.Is(err, fabric.ErrUnknownOp):
		return fabric.StatusUnknownOp
	}
	return fabric.StatusBadRequest
}

// reply sends a response; a failure means the connection is gone, which
// the receive loop will see.
func (c *session) reply(r *fabric.Response) {
	if r.Status != fabric.StatusOK {
		c.log().Debug("request failed", "op", r.Op, "id", r.ID, "status", r.Status, "msg", r.Message)
	}
	buf := fabric.AppendResponse(make([]byte, 0, 256), c.conn.MaxMessage(), r)
	err := c.conn.Send(c.ctx, buf)
	if errors.Is(err, fabric.ErrMessageTooLarge) {
		// The body does not fit the agreed message size: say so rather
		// than leave the request unanswered.
		c.log().Warn("reply too large for the connection", "op", r.Op, "id", r.ID, "bytes", len(buf),
			"max", c.conn.MaxMessage())
		buf = fabric.AppendResponse(buf[:0], c.conn.MaxMessage(), &fabric.Response{Op: r.Op, ID: r.ID,
			Status: fabric.StatusTooLarge, Message: fmt.Sprintf("reply of %d bytes exceeds the agreed "+
				"message size %d", len(buf), c.conn.MaxMessage())})
		err = c.conn.Send(c.ctx, buf)
	}
	if err != nil {
		c.log().Debug("send response", "op", r.Op, "id", r.ID, "err", err)
	}
}

// failure is a request error with the status to report.
type failure struct {
	status fabric.Status
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(status fabric.Status, format string, args ...any) error {
	return &failure{status: status, err: fmt.Errorf(format, args...)}
}

func (c *session) handle(h fabric.Header, req fabric.Request) {
	resp := &fabric.Response{Op: h.Op, ID: h.ID}
	start := time.Now()

	var err error
	if _, isHello := req.(*fabric.Hello); !isHello && c.currentTenant() == nil {
		err = fail(fabric.StatusNoSession, "%s before hello", h.Op)
	} else {
		switch r := req.(type) {
		case *fabric.Hello:
			resp.Body, err = c.hello(r)
		case *fabric.Load:
			resp.Body, err = c.load(r)
		case *fabric.Unload:
			resp.Body, err = c.unload(r)
		case *fabric.Exec:
			resp.Body, err = c.exec(r, resp)
		case *fabric.ReadBlocks:
			resp.Body, err = c.readBlocks(r, resp)
		case *fabric.WriteBlocks:
			resp.Body, err = c.writeBlocks(r, resp)
		case *fabric.Flush:
			resp.Body, err = c.flush(r, resp)
		case *fabric.Stats:
			resp.Body = &fabric.StatsReply{Counters: c.s.counters()}
		default:
			err = fail(fabric.StatusUnknownOp, "op %s not served", h.Op)
		}
	}

	if err != nil {
		c.s.stats.failures.Add(1)
		resp.Status = fabric.StatusInternal
		var f *failure
		if errors.As(err, &f) {
			resp.Status = f.status
		}
		resp.Message = err.Error()
		resp.Body = nil
	}
	c.s.stats.storageNs.Add(resp.StorageNs)
	c.s.stats.bpfNs.Add(resp.BpfNs)
	c.log().Debug("request done", "op", h.Op, "id", h.ID, "status", resp.Status,
		"took", time.Since(start))
	c.reply(resp)
}

func (c *session) currentTenant() *tenant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tenant
}

func (c *session) hello(r *fabric.Hello) (fabric.ResponseBody, error) {
	if r.Tenant == "" {
		return nil, fail(fabric.StatusBadRequest, "hello without a tenant name")
	}
	depth := int(r.QueueDepth)
	if depth <= 0 || depth > c.s.cfg.QueueDepth {
		depth = c.s.cfg.QueueDepth
	}

	c.mu.Lock()
	if c.tenant != nil {
		c.mu.Unlock()
		return nil, fail(fabric.StatusBadRequest, "second hello on one connection")
	}
	c.tenant = c.s.tenantFor(r.Tenant)
	c.mu.Unlock()

	reply := &fabric.HelloReply{
		QueueDepth:     uint16(depth),
		MaxIOBytes:     uint32(c.s.cfg.MaxIOBytes),
		MaxResultBytes: uint32(len(c.s.engine.ResultMemory()) / c.s.engine.Slots()),
	}
	for _, ns := range c.s.cfg.Namespaces {
		id, bs, n := ns.Info()
		reply.Namespaces = append(reply.Namespaces, fabric.NamespaceInfo{ID: id, BlockSize: bs, Blocks: n})
	}
	c.logp.Store(c.log().With("tenant", r.Tenant))
	c.log().Info("session open", "queue_depth", depth)
	return reply, nil
}

func (c *session) namespace(id uint32, lba uint64, blocks uint32) (*Namespace, error) {
	ns := c.s.namespaces[id]
	if ns == nil {
		return nil, fail(fabric.StatusNoNamespace, "namespace %d is not served here", id)
	}
	if err := ns.check(lba, uint64(blocks)); err != nil {
		return nil, fail(fabric.StatusOutOfRange, "%v", err)
	}
	return ns, nil
}

// remoteErr classifies the failure of a one-sided operation.
func remoteErr(what string, err error) error {
	if errors.Is(err, fabric.ErrRegion) {
		return fail(fabric.StatusRegion, "%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
