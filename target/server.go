package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-fabric/ferry/bpf"
	"github.com/ferry-fabric/ferry/fabric"
)

// Config sets up a Server. Transport, Engine and at least one namespace
// are required; zero values elsewhere take defaults.
type Config struct {
	Transport  fabric.Transport
	Engine     *bpf.Engine
	Namespaces []*Namespace
	// Workers bounds concurrent extension runs; default GOMAXPROCS.
	Workers int
	// QueueDepth bounds the requests in flight per connection; default 32.
	// Listeners should post at least as many receive buffers
	// (fabric.ConnOptions.RecvDepth), or initiators stall on credits first.
	QueueDepth int
	// IOBuffers is the number of 1 MiB buffers for block reads and writes
	// shared by all connections; default 4*Workers.
	IOBuffers int
	// MaxIOBytes bounds one read or write request; default 16 MiB.
	MaxIOBytes int
	// ReadAhead is how many chunks of an exec request may be read while
	// an earlier one runs, when free slots allow; default 2.
	ReadAhead int
	// MaxExtensions bounds the extensions one tenant may keep loaded;
	// default 64. MaxTotalExtensions bounds them over all tenants, whose
	// names are not authenticated yet; default 1024.
	MaxExtensions      int
	MaxTotalExtensions int
	// OpTimeout bounds a one-sided operation to an initiator; past it the
	// connection is closed, so that a peer that stops reading cannot hold
	// the target's buffers. Default 30 s.
	OpTimeout time.Duration
	Logger    *slog.Logger
}

const ioBufSize = 1 << 20

// Server serves namespaces and runs extensions.
type Server struct {
	cfg        Config
	log        *slog.Logger
	engine     *bpf.Engine
	namespaces map[uint32]*Namespace

	// dataMR and resultMR register the engine's mmapped maps: the result
	// one-sided writes are made from resultMR.
	dataMR   fabric.MemoryRegion
	resultMR fabric.MemoryRegion
	io       *bufPool
	workers  chan struct{}

	mu       sync.Mutex
	tenants  map[string]*tenant
	conns    map[*session]struct{}
	closing  bool
	shutDown bool
	inflight sync.WaitGroup

	stats      counters
	extensions atomic.Int64 // loaded, over all tenants
}

// reserveExtension counts one more loaded extension, unless the target
// holds its limit.
func (s *Server) reserveExtension() bool {
	if s.extensions.Add(1) > int64(s.cfg.MaxTotalExtensions) {
		s.extensions.Add(-1)
		return false
	}
	return true
}

func (s *Server) releaseExtension() { s.extensions.Add(-1) }

// NewServer registers the engine's memory with the transport and prepares
// the buffers. The caller keeps ownership of the engine and namespaces.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Transport == nil || cfg.Engine == nil || len(cfg.Namespaces) == 0 {
		return nil, errors.New("new server: transport, engine and a namespace are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.QueueDepth <= 0 {
		cfg.QueueDepth = 32
	}
	if cfg.IOBuffers <= 0 {
		cfg.IOBuffers = 4 * cfg.Workers
	}
	if cfg.MaxIOBytes <= 0 {
		cfg.MaxIOBytes = 16 << 20
	}
	if cfg.ReadAhead <= 0 {
		cfg.ReadAhead = 2
	}
	if cfg.MaxExtensions <= 0 {
		cfg.MaxExtensions = 64
	}
	if cfg.MaxTotalExtensions <= 0 {
		cfg.MaxTotalExtensions = 1024
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		engine:     cfg.Engine,
		namespaces: make(map[uint32]*Namespace),
		workers:    make(chan struct{}, cfg.Workers),
		tenants:    make(map[string]*tenant),
		conns:      make(map[*session]struct{}),
	}
	for _, ns := range cfg.Namespaces {
		if _, dup := s.namespaces[ns.ID]; dup {
			return nil, fmt.Errorf("new server: namespace %d given twice", ns.ID)
		}
		s.namespaces[ns.ID] = ns
	}

	var err error
	if s.dataMR, err = cfg.Transport.Register(cfg.Engine.DataMemory(), fabric.AccessLocalWrite); err != nil {
		return nil, fmt.Errorf("register data map memory: %w", err)
	}
	if s.resultMR, err = cfg.Transport.Register(cfg.Engine.ResultMemory(), fabric.AccessLocalWrite); err != nil {
		s.dataMR.Close()
		return nil, fmt.Errorf("register result map memory: %w", err)
	}
	if s.io, err = newBufPool(cfg.Transport, cfg.IOBuffers, ioBufSize); err != nil {
		s.resultMR.Close()
		s.dataMR.Close()
		return nil, err
	}
	return s, nil
}

// ResultRegion is the memory region exec results are written from: the
// mmapped result map. Tests use it to check the zero-copy path.
func (s *Server) ResultRegion() fabric.MemoryRegion { return s.resultMR }

// Counters returns the target's statistics.
func (s *Server) Counters() []fabric.Counter { return s.counters() }

// Serve accepts connections on ln until ctx ends or ln is closed, and
// serves each on its own goroutine.
func (s *Server) Serve(ctx context.Context, ln fabric.Listener) error {
	s.log.Info("serving", "transport", s.cfg.Transport.Name(), "addr", ln.Addr())
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || s.isClosing() {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		sess := s.newSession(conn)
		if sess == nil {
			conn.Close()
			continue
		}
		go sess.serve()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops taking requests, waits for those in flight to finish (or
// ctx to end), then closes every connection and releases the buffers.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutDown {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: requests still in flight: %w", ctx.Err())
	}

	s.mu.Lock()
	conns := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.conn.Close()
		<-c.done
	}
	if err != nil {
		// Operations may still name the buffers; leave them mapped.
		return err
	}

	s.mu.Lock()
	for _, t := range s.tenants {
		t.closeAll()
	}
	s.mu.Unlock()
	s.io.close()
	s.resultMR.Close()
	s.dataMR.Close()
	s.mu.Lock()
	s.shutDown = true
	s.mu.Unlock()
	s.log.Info("target shut down")
	return nil
}

// begin registers a request in flight, unless the server is closing.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}

// tenantFor returns the named tenant's state, creating it.
func (s *Server) tenantFor(name string) *tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[name]
	if t == nil {
		t = &tenant{name: name, exts: make(map[uint32]*extension), release: s.releaseExtension}
		s.tenants[name] = t
	}
	return t
}

// tenant holds the extensions one tenant has loaded.
type tenant struct {
	name    string
	release func() // gives back a server-wide extension count
	mu      sync.Mutex
	next    uint32
	exts    map[uint32]*extension
}

// extension is a loaded program with a count of runs using it, so that
// unload never closes a program under a running request.
type extension struct {
	prog     *bpf.Extension
	refs     atomic.Int64
	unloaded atomic.Bool
}

func (x *extension) release() {
	if x.refs.Add(-1) == 0 && x.unloaded.Load() {
		x.prog.Close()
	}
}

func (t *tenant) add(prog *bpf.Extension, max int) (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.exts) >= max {
		return 0, fmt.Errorf("tenant %q has %d extensions loaded, the limit", t.name, max)
	}
	t.next++
	x := &extension{prog: prog}
	x.refs.Store(1)
	t.exts[t.next] = x
	return t.next, nil
}

// get takes a reference on a loaded extension.
func (t *tenant) get(h uint32) *extension {
	t.mu.Lock()
	defer t.mu.Unlock()
	x := t.exts[h]
	if x != nil {
		x.refs.Add(1)
	}
	return x
}

func (t *tenant) remove(h uint32) bool {
	t.mu.Lock()
	x := t.exts[h]
	delete(t.exts, h)
	t.mu.Unlock()
	if x == nil {
		return false
	}
	x.unloaded.Store(true)
	x.release()
	t.release()
	return true
}

func (t *tenant) closeAll() {
	t.mu.Lock()
	hs := make([]uint32, 0, len(t.exts))
	for h := range t.exts {
		hs = append(hs, h)
	}
	t.mu.Unlock()
	for _, h := range hs {
		t.remove(h)
	}
}
