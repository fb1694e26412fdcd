package rdma

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/internal/testenv"
)

// TestMain fails the package when goroutines, file descriptors or verbs
// objects (PDs, MRs, CQs, QPs, rdma_cm ids and channels) outlive the
// tests.
func TestMain(m *testing.M) {
	// Start the network poller first: its descriptors live for good.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	// So does what librdmacm opens on first use (the rdma_cm and device
	// descriptors it caches for the process).
	if tr, err := New(Options{}); err == nil {
		tr.Close()
	}
	fds := countFDs()
	code := m.Run()

	if code == 0 {
		var leaked []string
		var open cgo.Counts
		for deadline := time.Now().Add(5 * time.Second); ; {
			leaked, open = ourGoroutines(), cgo.Open()
			if len(leaked) == 0 && open.IsZero() || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "%d leaked goroutines:\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
		if !open.IsZero() {
			fmt.Fprintf(os.Stderr, "verbs objects still open: %s\n", open)
			code = 1
		}
		if n := countFDs(); fds >= 0 && n > fds {
			fmt.Fprintf(os.Stderr, "leaked file descriptors: %d before, %d after\n", fds, n)
			code = 1
		}
	}
	os.Exit(code)
}

func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	var ours []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "ferry-fabric/ferry/") && !strings.Contains(g, ".TestMain(") {
			ours = append(ours, g)
		}
	}
	return ours
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// needDevice skips t outside the soft-RoCE VM, where the host has no RDMA
// at all (even in CI), and inside it skips or fails (CI) without a
// device. It returns the address to listen on.
func needDevice(t testing.TB) string {
	t.Helper()
	if os.Getenv("FERRY_VM") == "" {
		t.Skip("runs inside the soft-RoCE VM (make test-rxe)")
	}
	addr := os.Getenv("FERRY_RDMA_ADDR")
	if addr == "" {
		testenv.Missing(t, "no RDMA address (FERRY_RDMA_ADDR)")
	}
	tr, err := New(Options{Device: os.Getenv("FERRY_RDMA_DEV")})
	if errors.Is(err, fabric.ErrNotSupported) {
		testenv.Missing(t, "no RDMA device")
	}
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	return addr
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fixture is a listening server transport and a client transport, both
// on the VM's one rxe device: rxe loops back.
type fixture struct {
	t        testing.TB
	srv, cli *Transport
	ln       fabric.Listener
	srvLog   logBuffer
}

func newFixture(t testing.TB, srvOpts fabric.ConnOptions) *fixture {
	return newFixtureWith(t, srvOpts, Options{})
}

func newFixtureWith(t testing.TB, srvOpts fabric.ConnOptions, opts Options) *fixture {
	t.Helper()
	addr := needDevice(t)
	f := &fixture{t: t}
	opts.Device = os.Getenv("FERRY_RDMA_DEV")
	so := opts
	so.Logger = f.srvLog.logger()
	var err error
	if f.srv, err = New(so); err != nil {
		t.Fatal(err)
	}
	if f.cli, err = New(opts); err != nil {
		f.srv.Close()
		t.Fatal(err)
	}
	ln, err := f.srv.Listen(addr+":0", srvOpts)
	if err != nil {
		f.srv.Close()
		f.cli.Close()
		t.Fatal(err)
	}
	f.ln = ln
	t.Cleanup(func() {
		ln.Close()
		f.cli.Close()
		f.srv.Close()
	})
	return f
}

func (f *fixture) connect(opts fabric.ConnOptions) (cli, srv fabric.Conn) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := f.cli.Dial(ctx, f.ln.Addr(), opts)
	if err != nil {
		f.t.Fatal(err)
	}
	srv, err = f.ln.Accept(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

func register(t testing.TB, tr *Transport, buf []byte, a fabric.Access) fabric.MemoryRegion {
	t.Helper()
	mr, err := tr.Register(buf, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mr.Close() })
	return mr
}

// mmapped returns n bytes of anonymous mapping, as the target's buffers.
func mmapped(t testing.TB, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after this cleanup, so deregistered before it runs.
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitOne(t testing.TB, c fabric.Conn) fabric.Completion {
	t.Helper()
	var cs [1]fabric.Completion
	n, err := c.Wait(ctxT(t), cs[:])
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if n != 1 {
		t.Fatalf("wait returned %d completions", n)
	}
	return cs[0]
}

func waitDone(t testing.TB, c fabric.Conn) error {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection did not break")
	}
	err := c.Err()
	if !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("Err() = %v, want ErrConnClosed", err)
	}
	return err
}

func pattern(b []byte, seed int) {
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
}
