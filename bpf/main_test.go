package bpf

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf/rlimit"
)

// TestMain fails the package if it leaks file descriptors: maps, programs
// and mmaps are all fds or hold them.
func TestMain(m *testing.M) {
	flag.Parse()

	// Initialise the runtime's poller now so its fds count as "before".
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	_ = rlimit.RemoveMemlock() // only matters before 5.11; harmless after

	before := openFDs()
	code := m.Run()
	after := openFDs()
	if code == 0 {
		var leaked []string
		for fd, target := range after {
			if _, ok := before[fd]; !ok {
				leaked = append(leaked, fmt.Sprintf("%s -> %s", fd, target))
			}
		}
		if len(leaked) > 0 {
			sort.Strings(leaked)
			fmt.Fprintf(os.Stderr, "FAIL: leaked %d fds:\n\t%s\n", len(leaked),
				strings.Join(leaked, "\n\t"))
			code = 1
		}
	}
	os.Exit(code)
}

func openFDs() map[string]string {
	fds := map[string]string{}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fds
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the fd ReadDir itself used
		}
		fds[e.Name()] = target
	}
	return fds
}

// requireKernel skips a test that needs root and kernel eBPF when they are
// missing, except in CI (CI=true), where they are supposed to exist and
// their absence fails the test.
func requireKernel(tb testing.TB) {
	tb.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	case !haveBPF():
		why = "no bpf(2)"
	default:
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("needs root and kernel eBPF: %s", why)
	}
	tb.Skipf("needs root and kernel eBPF: %s", why)
}

func haveBPF() bool {
	_, err := os.Stat("/proc/sys/kernel/unprivileged_bpf_disabled")
	return err == nil
}

// newTestEngine returns an engine with a few slots, closed at cleanup.
func newTestEngine(tb testing.TB, slots int) *Engine {
	tb.Helper()
	requireKernel(tb)
	e, err := NewEngine(Config{Slots: slots})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Error(err)
		}
	})
	return e
}
