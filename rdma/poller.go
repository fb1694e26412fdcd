package rdma

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
)

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// CompletionError is the cause of a connection broken by a work request
// that completed in error. Access errors, local or remote, also match
// fabric.ErrRegion.
type CompletionError struct {
	Op        string
	Status    cgo.WCStatus
	VendorErr uint32
}

func (e *CompletionError) Error() string {
	return fmt.Sprintf("%s completion: %s (status %d, vendor error %#x)",
		e.Op, e.Status, int(e.Status), e.VendorErr)
}

func (e *CompletionError) Is(target error) bool {
	if target != fabric.ErrRegion {
		return false
	}
	switch e.Status {
	case cgo.WCLocProtErr, cgo.WCLocAccessErr, cgo.WCRemAccessErr, cgo.WCRemInvReqErr:
		return true
	}
	return false
}

// pollSpin is how long the poller of a connection that sleeps on its
// completion channel keeps polling after its last completion.
var pollSpin = 50 * time.Microsecond

// pollLoop reaps the completion queue until the connection is broken and
// every work request it posted has come back, then frees the connection.
func (c *conn) pollLoop() {
	defer c.wg.Done()
	wcs := make([]cgo.WC, pollBatch)
	try := func() bool {
		e := c.cq.GetEvent(c.cch)
		return !errors.Is(e, syscall.EAGAIN)
	}
	var last time.Time
	for {
		n, err := c.cq.Poll(wcs)
		if err != nil {
			c.fail(err)
			break
		}
		if n > 0 {
			c.handle(wcs[:n])
			if pollSpin > 0 {
				last = time.Now()
			}
			continue
		}
		if drained, expired := c.drained(); drained || expired {
			break
		}
		// Spin a little after work before sleeping: a reply often follows
		// soon, and waking from the channel costs more than the spin.
		if c.busy || pollSpin > 0 && time.Since(last) < pollSpin {
			runtime.Gosched()
			continue
		}

		// Arm, then poll once more: a completion that came in between
		// would not wake us.
		if err := c.cq.ReqNotify(false); err != nil {
			c.fail(err)
			break
		}
		if n, err = c.cq.Poll(wcs); n > 0 {
			c.handle(wcs[:n])
			continue
		}
		err = c.ccw.wait(context.Background(), try)
		c.cq.Ack()
		if err != nil {
			// The drain deadline passed.
			break
		}
	}
	close(c.reaped)
	c.teardown()
}

// drained says whether the connection is broken with nothing posted
// left, or broken for longer than the device may take to flush.
func (c *conn) drained() (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return false, false
	}
	return c.recvPosted == 0 && c.sqUsed == 0, time.Since(c.failedAt) > drainTimeout
}

func (c *conn) handle(wcs []cgo.WC) {
	for i := range wcs {
		wc := &wcs[i]
		if wc.WRID&recvBit != 0 {
			c.onRecv(int(wc.WRID&^recvBit), wc)
		} else {
			c.onSendQueue(int(wc.WRID), wc)
		}
	}
}

// failWC breaks the connection for a completion in error and returns the
// error of the work request: its own status, unless it was flushed, in
// which case the connection's error says why. A peer's disconnect may
// have broken the connection first; the request still says what it hit.
func (c *conn) failWC(op string, wc *cgo.WC) error {
	if wc.Status == cgo.WCFlushErr {
		c.fail(errFlushed)
		return c.Err()
	}
	err := &CompletionError{Op: op, Status: wc.Status, VendorErr: wc.VendorErr}
	if c.log != nil {
		c.log.Debug("rdma: work request failed", "err", err)
	}
	c.fail(err)
	return fmt.Errorf("%w: %w", fabric.ErrConnClosed, err)
}

func (c *conn) onRecv(idx int, wc *cgo.WC) {
	c.mu.Lock()
	c.recvPosted--
	c.mu.Unlock()
	if wc.Status != cgo.WCSuccess {
		c.failWC("receive", wc)
		return
	}
	if idx >= len(c.msgs) {
		c.fail(fmt.Errorf("receive completion for buffer %d of %d", idx, len(c.msgs)))
		return
	}
	m := &c.msgs[idx]
	h, err := decodeHeader(m.buf[:wc.ByteLen])
	if err != nil {
		c.fail(c.violation(err))
		return
	}

	c.mu.Lock()
	if h.Credits > uint32(c.unacked) {
		un := c.unacked
		c.mu.Unlock()
		c.fail(c.violation(fmt.Errorf("%w: %d credits returned, %d messages unacknowledged",
			ErrProtocol, h.Credits, un)))
		return
	}
	c.unacked -= int(h.Credits)
	// Headers of concurrent sends may arrive out of their numbering; keep
	// the newest acknowledgement, which never passes what was sent.
	if d := h.Acked - c.peerAck; d != 0 && d < 0x8000 && c.cmSent-h.Acked < 0x8000 {
		c.peerAck = h.Acked
	}
	credit := h.Flags&flagCredit != 0
	if !credit && c.outstanding >= c.depth {
		c.mu.Unlock()
		c.fail(c.violation(fmt.Errorf("%w: message beyond the %d credits granted",
			ErrProtocol, c.depth)))
		return
	}
	if credit {
		c.recvPosted++
	} else {
		c.outstanding++
		c.held++
	}
	c.mu.Unlock()

	if credit {
		// The reserve buffer goes straight back, and is acknowledged
		// before the credits it brought can be used: every message sent
		// with them carries the acknowledgement (doc.go relies on it).
		if !c.repost(idx) {
			return
		}
		c.mu.Lock()
		c.cmRecv++
		c.mu.Unlock()
	}
	if h.Credits > 0 {
		c.credits.Add(int(h.Credits))
	}
	if !credit {
		m.n = int(wc.ByteLen) - headerSize
		m.held.Store(true)
		c.recvq <- m // never blocks: it holds as many as there are buffers
	}

	c.mu.Lock()
	due := c.creditDue()
	c.mu.Unlock()
	if due {
		c.kickCtl()
	}
}

func (c *conn) onSendQueue(slot int, wc *cgo.WC) {
	if slot >= len(c.slots) {
		c.fail(fmt.Errorf("send completion for slot %d of %d", slot, len(c.slots)))
		return
	}
	c.mu.Lock()
	s := c.slots[slot]
	c.slots[slot] = wrSlot{}
	c.sqUsed--
	if s.kind == wrRead {
		c.reads--
	}
	c.mu.Unlock()
	c.sqSlots <- slot

	op := "send"
	verb := fabric.VerbWrite
	switch s.kind {
	case wrWrite:
		op = "write"
	case wrRead:
		op, verb = "read", fabric.VerbRead
	}
	var err error
	if wc.Status != cgo.WCSuccess {
		err = c.failWC(op, wc)
	}
	switch s.kind {
	case wrSend, wrCredit:
		c.sendBufs <- s.buf
	case wrWrite, wrRead:
		c.comps.Complete(fabric.Completion{ID: s.id, Verb: verb, Len: s.n, Err: err})
	}
}

// cmLoop turns rdma_cm events into connection failures: a disconnect by
// the peer, the device going away.
func (c *conn) cmLoop() {
	defer c.wg.Done()
	defer close(c.cmDone)
	for {
		var ev cgo.CMEvent
		var gerr error
		err := c.ecw.wait(context.Background(), func() bool {
			ev, gerr = c.ech.GetEvent()
			return !errors.Is(gerr, syscall.EAGAIN)
		})
		if err != nil {
			return // the poller closed the waiter
		}
		if gerr != nil {
			c.fail(fmt.Errorf("get rdma_cm event: %w", gerr))
			return
		}
		switch ev.Type {
		case cgo.EventDisconnected:
			c.fail(errPeerDisconnected)
		case cgo.EventDeviceRemoval:
			c.fail(errors.New("device removed"))
		default:
			if c.log != nil {
				c.log.Debug("rdma: cm event", "event", ev.Type.String(), "status", ev.Status)
			}
		}
	}
}

// teardown completes what the device never gave back, stops the cm
// goroutine and frees the connection's resources.
func (c *conn) teardown() {
	c.mu.Lock()
	var left []fabric.Completion
	for i, s := range c.slots {
		switch s.kind {
		case wrWrite, wrRead:
			left = append(left, fabric.Completion{ID: s.id, Len: s.n, Err: c.err,
				Verb: map[wrKind]fabric.Verb{wrWrite: fabric.VerbWrite, wrRead: fabric.VerbRead}[s.kind]})
		}
		c.slots[i] = wrSlot{}
	}
	c.mu.Unlock()
	for _, cpl := range left {
		c.comps.Complete(cpl)
	}

	c.ecw.close()
	<-c.cmDone
	c.destroy()
}

// destroy frees whatever of the connection exists, in reverse order of
// creation. Receive buffers still held by the application stay mapped
// until their last Release.
func (c *conn) destroy() {
	c.life.Lock()
	c.destroyed = true
	c.life.Unlock()

	if c.id != nil {
		c.id.DestroyQP()
	}
	if c.cq != nil {
		c.cq.Close()
	}
	if c.ccw != nil {
		c.ccw.close()
	}
	if c.cch != nil {
		c.cch.Close()
	}
	if c.id != nil {
		c.id.Close()
	}
	if c.ecw != nil {
		c.ecw.close()
	}
	if c.ech != nil {
		c.ech.Close()
	}
	if c.sendMR != nil {
		c.sendMR.Close()
	}
	if c.sendMem != nil {
		unix.Munmap(c.sendMem)
	}
	if c.recvMR != nil {
		c.recvMR.Close()
	}
	c.mu.Lock()
	c.torn = true
	free := c.recvMem != nil && c.held == 0 && !c.recvFreed
	if free {
		c.recvFreed = true
	}
	c.mu.Unlock()
	if free {
		unix.Munmap(c.recvMem)
	}
}
