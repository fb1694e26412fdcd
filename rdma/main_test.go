package rdma

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/fabrictest"
	"github.com/ferry-fabric/ferry/internal/testenv"
)

// TestMain fails the package when goroutines, file descriptors or verbs
// objects (PDs, MRs, CQs, QPs, rdma_cm ids and channels) outlive the
// tests.
func TestMain(m *testing.M) {
	// What librdmacm opens on first use (the rdma_cm and device
	// descriptors it caches for the process) lives for good.
	if tr, err := New(Options{}); err == nil {
		tr.Close()
	}
	os.Exit(testenv.Leaks{
		Goroutines: "ferry-fabric/ferry/",
		Open: func() string {
			if open := cgo.Open(); !open.IsZero() {
				return "verbs objects " + open.String()
			}
			return ""
		},
		Grace: 5 * time.Second,
	}.Run(m))
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

// provider describes this package, with opts, to the conformance suite:
// both sides on the VM's one rxe device, which loops back. It skips t
// where needDevice does.
func provider(t testing.TB, opts Options) fabrictest.Provider {
	t.Helper()
	addr := needDevice(t)
	opts.Device = os.Getenv("FERRY_RDMA_DEV")
	// The target logs everything, to exercise the logging paths.
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return fabrictest.Provider{
		New: func(t testing.TB, side fabrictest.Side) fabric.Transport {
			o := opts
			if side == fabrictest.Target {
				o.Logger = debug
			}
			tr, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		Host:  addr,
		Alloc: mmapped,
		// The target's device NAKs the access; the initiator's work
		// request completes in error.
		Violation: fabrictest.AtInitiator,
	}
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
