package tcp

import (
	"bytes"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/fabrictest"
	"github.com/ferry-fabric/ferry/internal/testenv"
)

// TestMain fails the package when goroutines or file descriptors outlive
// the tests.
func TestMain(m *testing.M) {
	os.Exit(testenv.Leaks{Goroutines: "ferry-fabric/ferry/fabric"}.Run(m))
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

// provider describes this package to the conformance suite. Target
// transports log into targetLog.
func provider(targetLog *logBuffer) fabrictest.Provider {
	return fabrictest.Provider{
		New: func(t testing.TB, side fabrictest.Side) fabric.Transport {
			if side == fabrictest.Target && targetLog != nil {
				return New(Options{Logger: targetLog.logger()})
			}
			return New(Options{})
		},
		Host: "127.0.0.1",
		// The target checks each access against its region table.
		Violation: fabrictest.AtTarget,
		// All but fewer than half the depth come back in a credit frame;
		// the rest may wait to ride on a frame.
		IdleCredits: 3,
	}
}

// newFixture is a target transport listening on loopback with srvOpts,
// and an initiator transport.
func newFixture(t testing.TB, srvOpts fabric.ConnOptions) *fabrictest.Pair {
	t.Helper()
	return fabrictest.NewPair(t, provider(nil), srvOpts)
}
