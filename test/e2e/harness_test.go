package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/bpf"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/tcp"
	"github.com/ferry-fabric/ferry/initiator"
	"github.com/ferry-fabric/ferry/internal/testenv"
	"github.com/ferry-fabric/ferry/rdma"
	"github.com/ferry-fabric/ferry/target"
)

const (
	blockSize = 4096
	nsBlocks  = 2048 // 8 MiB: several 1 MiB chunks per whole-namespace exec
)

// env is one running target and what the tests need to reach it.
type env struct {
	addr   string
	srv    *target.Server
	engine *bpf.Engine
	data   []byte // the namespace's initial content
	path   string
}

type envOptions struct {
	slots, workers, depth int
	maxIO                 int
	opTimeout             time.Duration
}

// logger logs at debug level to stderr when FERRY_TEST_LOG=debug, and
// nowhere otherwise.
func logger(t testing.TB) *slog.Logger {
	if os.Getenv("FERRY_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startTarget serves a file-backed namespace of random records over TCP
// on 127.0.0.1 until the test ends.
func startTarget(t testing.TB, o envOptions) *env {
	t.Helper()
	testenv.RequireRoot(t)
	if o.slots == 0 {
		o.slots = 4
	}
	log := logger(t)

	data := make([]byte, nsBlocks*blockSize)
	rand.Read(data)
	path := nsPath(t, data)
	ns, err := target.OpenNamespace(1, path, blockSize, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })

	engine, err := bpf.NewEngine(bpf.Config{Slots: o.slots, Logger: log})
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	t.Cleanup(func() { engine.Close() })

	tr, host := transport(t, log)
	t.Cleanup(func() { tr.Close() })
	srv, err := target.NewServer(target.Config{Transport: tr, Engine: engine,
		Namespaces: []*target.Namespace{ns}, Workers: o.workers, QueueDepth: o.depth, MaxIOBytes: o.maxIO,
		OpTimeout: o.opTimeout, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tr.Listen(host+":0", fabric.ConnOptions{RecvDepth: max(o.depth, 32), BusyPoll: busyPoll()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &env{addr: tr.Name() + "://" + ln.Addr(), srv: srv, engine: engine, data: data, path: path}
}

func (e *env) dial(t *testing.T, tenant string) *initiator.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := initiator.Dial(ctx, e.addr, initiator.Options{Tenant: tenant, Logger: logger(t),
		Conn: fabric.ConnOptions{BusyPoll: busyPoll()}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func buffer(t *testing.T, c *initiator.Client, n int) *initiator.Buffer {
	t.Helper()
	b, err := c.NewBuffer(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func counter(t *testing.T, c *initiator.Client, name string) uint64 {
	t.Helper()
	cs, err := c.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	for _, ct := range cs {
		if ct.Name == name {
			return ct.Value
		}
	}
	t.Fatalf("no counter %q", name)
	return 0
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The suite runs over TCP on 127.0.0.1 by default. make test-rxe runs it
// again inside the soft-RoCE VM with FERRY_E2E_TRANSPORT=rdma, on the rxe
// device's address, and with FERRY_E2E_NVME naming the emulated drive.
func transport(t testing.TB, log *slog.Logger) (fabric.Transport, string) {
	switch kind := os.Getenv("FERRY_E2E_TRANSPORT"); kind {
	case "", "tcp":
		return tcp.New(tcp.Options{Logger: log}), "127.0.0.1"
	case "rdma":
		addr := os.Getenv("FERRY_RDMA_ADDR")
		if addr == "" {
			t.Fatal("FERRY_E2E_TRANSPORT=rdma needs FERRY_RDMA_ADDR (set inside the test VM)")
		}
		tr, err := rdma.New(rdma.Options{Logger: log, BusyPoll: busyPoll()})
		if err != nil {
			testenv.Missing(t, fmt.Sprintf("no RDMA transport: %v", err))
		}
		return tr, addr
	default:
		t.Fatalf("FERRY_E2E_TRANSPORT=%q: want tcp or rdma", kind)
		return nil, ""
	}
}

// nsPath writes data where the namespace lives: a new file, or the block
// device FERRY_E2E_NVME, which must hold exactly nsBlocks blocks.
func nsPath(t testing.TB, data []byte) string {
	dev := os.Getenv("FERRY_E2E_NVME")
	if dev == "" {
		path := filepath.Join(t.TempDir(), "ns1.dat")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if end, err := f.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Fatalf("%s holds %d bytes (%v); the suite needs exactly %d", dev, end, err, len(data))
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// The target reads with O_DIRECT: flush the page cache's copy first.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return dev
}

// busyPoll asks RDMA connections to spin on their completion queues
// (FERRY_E2E_BUSYPOLL=1) instead of sleeping on completion events.
func busyPoll() bool { return os.Getenv("FERRY_E2E_BUSYPOLL") == "1" }
