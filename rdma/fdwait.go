package rdma

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdWaiter waits in Go's network poller for a channel descriptor owned by
// libibverbs or librdmacm to become readable. It polls a duplicate, so
// that closing it (which wakes a waiter) leaves the library's descriptor
// alone.
type fdWaiter struct {
	f  *os.File
	rc syscall.RawConn
}

func newFDWaiter(fd int, name string) (*fdWaiter, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate %s descriptor: %w", name, err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("set %s descriptor non-blocking: %w", name, err)
	}
	f := os.NewFile(uintptr(nfd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("poll %s descriptor: %w", name, err)
	}
	return &fdWaiter{f: f, rc: rc}, nil
}

// wait calls try until it reports done, sleeping until the descriptor is
// readable whenever try finds nothing. It fails when ctx ends, at the
// deadline set with setDeadline, or once close was called.
func (w *fdWaiter) wait(ctx context.Context, try func() bool) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Unix(1, 0)) })
		defer func() {
			if stop() {
				return
			}
			// The deadline was moved: put it back for the next wait.
			w.f.SetReadDeadline(time.Time{})
		}()
	}
	err := w.rc.Read(func(uintptr) bool { return try() })
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (w *fdWaiter) setDeadline(t time.Time) { w.f.SetReadDeadline(t) }

func (w *fdWaiter) close() { w.f.Close() }
