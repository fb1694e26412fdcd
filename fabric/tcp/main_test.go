package tcp

import (
	"bytes"
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

	"github.com/ferry-fabric/ferry/fabric"
)

// TestMain fails the package when goroutines or file descriptors outlive
// the tests.
func TestMain(m *testing.M) {
	// Start the network poller first: its descriptors live for good.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	fds := countFDs()
	code := m.Run()

	if code == 0 {
		// Give goroutines that are on their way out a moment.
		var leaked []string
		for deadline := time.Now().Add(3 * time.Second); ; {
			leaked = ourGoroutines()
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "%d leaked goroutines:\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
		if n := countFDs(); fds >= 0 && n > fds {
			fmt.Fprintf(os.Stderr, "leaked file descriptors: %d before, %d after\n", fds, n)
			code = 1
		}
	}
	os.Exit(code)
}

// ourGoroutines returns the stacks of goroutines running code of this
// package or of fabric, other than TestMain's. The testing package's own
// (the fuzzer's signal handler, for one) are not counted.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	var ours []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "ferry-fabric/ferry/fabric") && !strings.Contains(g, ".TestMain(") {
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

// logBuffer collects a Transport's log for inspection.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// fixture is a listening server transport and a client transport.
type fixture struct {
	t        testing.TB
	srv, cli *Transport
	ln       fabric.Listener
	srvLog   logBuffer
}

func newFixture(t testing.TB, srvOpts fabric.ConnOptions) *fixture {
	t.Helper()
	f := &fixture{t: t}
	f.srv = New(Options{Logger: f.srvLog.logger()})
	f.cli = New(Options{})
	ln, err := f.srv.Listen("127.0.0.1:0", srvOpts)
	if err != nil {
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

// connect dials the server and accepts the other end.
func (f *fixture) connect(opts fabric.ConnOptions) (cli, srv fabric.Conn) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitOne waits for one completion.
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

// waitDone waits for c to break and returns its error.
func waitDone(t testing.TB, c fabric.Conn) error {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection did not break")
	}
	err := c.Err()
	if !errors.Is(err, fabric.ErrConnClosed) {
		t.Fatalf("Err() = %v, want ErrConnClosed", err)
	}
	return err
}

// pattern fills b with bytes derived from seed.
func pattern(b []byte, seed int) {
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
}

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
