package testenv

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Leaks is what a package's TestMain checks for once its tests have
// passed: goroutines and file descriptors that outlived them, and
// whatever else Open reports.
type Leaks struct {
	// Goroutines marks a goroutine as the package's own: any whose stack
	// contains it counts, but TestMain's. The testing package's own (the
	// fuzzer's signal handler, for one) do not match a Ferry path.
	Goroutines string
	// Open, if set, describes resources still open outside Go's reach
	// (verbs objects, say), or returns "" when there are none.
	Open func() string
	// Grace is how long goroutines and resources on their way out are
	// given to go; zero means 3 s.
	Grace time.Duration
}

// Run runs the tests of m and returns the exit code for os.Exit: m's, or
// 1 when the tests passed but left something behind. Descriptors that
// live for good once opened (the network poller's, for one) must be
// opened before Run; Run opens the network poller itself.
func (l Leaks) Run(m *testing.M) int {
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	fds := CountFDs()
	code := m.Run()
	if code != 0 {
		return code
	}

	grace := l.Grace
	if grace == 0 {
		grace = 3 * time.Second
	}
	var leaked []string
	var open string
	for deadline := time.Now().Add(grace); ; {
		leaked = Goroutines(l.Goroutines)
		if l.Open != nil {
			open = l.Open()
		}
		if len(leaked) == 0 && open == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "%d leaked goroutines:\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
		code = 1
	}
	if open != "" {
		fmt.Fprintf(os.Stderr, "still open: %s\n", open)
		code = 1
	}
	if n := CountFDs(); fds >= 0 && n > fds {
		fmt.Fprintf(os.Stderr, "leaked file descriptors: %d before, %d after\n", fds, n)
		code = 1
	}
	return code
}

// Goroutines returns the stacks of the goroutines whose stack contains
// match, other than TestMain's.
func Goroutines(match string) []string {
	buf := make([]byte, 1<<20)
	var ours []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, match) && !strings.Contains(g, ".TestMain(") {
			ours = append(ours, g)
		}
	}
	return ours
}

// CountFDs returns the number of open file descriptors of the process, or
// -1 where /proc does not say.
func CountFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
