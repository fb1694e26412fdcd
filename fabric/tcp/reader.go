package tcp

import (
	"fmt"
	"io"

	"github.com/ferry-fabric/ferry/fabric"
)

func (c *conn) readLoop() {
	defer c.wg.Done()
	c.fail(c.readFrames())
}

// readFrames reads and acts on frames until the stream ends or the peer
// breaks the protocol. It never waits for a write to the socket, so two
// peers cannot deadlock on full socket buffers.
func (c *conn) readFrames() error {
	for {
		if _, err := io.ReadFull(c.nc, c.rhdr[:]); err != nil {
			return fmt.Errorf("read frame header: %w", err)
		}
		h, err := decodeHeader(c.rhdr[:])
		if err != nil {
			return c.violation(err)
		}
		if h.Credits > 0 {
			if err := c.creditsBack(h.Credits); err != nil {
				return c.violation(err)
			}
		}

		switch h.Type {
		case frameSend:
			err = c.recvSend(h)
		case frameWrite:
			err = c.recvWrite(h)
		case frameReadReq:
			err = c.recvReadReq(h)
		case frameReadResp:
			err = c.recvReadResp(h)
		case frameCredit:
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) creditsBack(n uint32) error {
	c.mu.Lock()
	if uint64(n) > uint64(c.unacked) {
		un := c.unacked
		c.mu.Unlock()
		return fmt.Errorf("%w: %d credits returned, %d messages unacknowledged", ErrProtocol, n, un)
	}
	c.unacked -= int(n)
	c.mu.Unlock()
	c.credits.Add(int(n))
	return nil
}

func (c *conn) recvSend(h header) error {
	if h.Length > uint32(c.maxMessage) {
		return c.violation(fmt.Errorf("%w: send of %d bytes, max message %d",
			ErrProtocol, h.Length, c.maxMessage))
	}
	var m *message
	select {
	case m = <-c.free:
	default:
		return c.violation(fmt.Errorf("%w: send with no receive buffer posted", ErrProtocol))
	}

	m.n = int(h.Length)
	if _, err := io.ReadFull(c.nc, m.buf[:m.n]); err != nil {
		return fmt.Errorf("read send payload: %w", err)
	}
	c.mu.Lock()
	c.outstanding++
	due := c.creditFlushDue()
	c.mu.Unlock()
	m.held.Store(true)
	c.recvq <- m // never blocks: it holds as many as there are buffers
	if due {
		c.kickCtl()
	}
	return nil
}

func (c *conn) recvWrite(h header) error {
	dst, err := c.t.lookup(h.Key, h.Addr, h.Length, fabric.AccessRemoteWrite)
	if err != nil {
		return c.violation(fmt.Errorf("write: %w", err))
	}
	c.waitResps(h.Addr, h.Length)
	if _, err := io.ReadFull(c.nc, dst); err != nil {
		return fmt.Errorf("read write payload: %w", err)
	}
	return nil
}

// waitResps waits until read responses queued before a write to [addr,
// addr+n) that overlap it have been sent, so that a read followed by a
// write returns the bytes from before the write, as an RDMA responder
// does.
func (c *conn) waitResps(addr uint64, n uint32) {
	c.mu.Lock()
	var last uint64
	found := false
	for _, r := range c.resps.rest() {
		if addr < r.addr+uint64(len(r.src)) && r.addr < addr+uint64(n) {
			last, found = r.seq, true
		}
	}
	for found && c.respSent <= last && c.err == nil {
		c.respWaiters = true
		wake := c.respWake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-c.done:
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
}

func (c *conn) recvReadReq(h header) error {
	src, err := c.t.lookup(h.Key, h.Addr, h.Length, fabric.AccessRemoteRead)
	if err != nil {
		return c.violation(fmt.Errorf("read: %w", err))
	}
	c.mu.Lock()
	if c.resps.len() >= maxOutstandingReads {
		c.mu.Unlock()
		return c.violation(fmt.Errorf("%w: more than %d reads outstanding",
			ErrProtocol, maxOutstandingReads))
	}
	c.resps.push(pendingResp{seq: c.respSeq, tag: h.ID, addr: h.Addr, src: src})
	c.respSeq++
	c.mu.Unlock()
	c.kickCtl()
	return nil
}

func (c *conn) recvReadResp(h header) error {
	c.mu.Lock()
	if c.reads.len() == 0 {
		c.mu.Unlock()
		return c.violation(fmt.Errorf("%w: read response %d with no read outstanding",
			ErrProtocol, h.ID))
	}
	if r := c.reads.front(); r.tag != h.ID || uint64(len(r.dst)) != uint64(h.Length) {
		tag, n := r.tag, len(r.dst)
		c.mu.Unlock()
		return c.violation(fmt.Errorf("%w: read response %d of %d bytes, expected %d of %d",
			ErrProtocol, h.ID, h.Length, tag, n))
	}
	r := c.reads.pop()
	c.mu.Unlock()

	// The read is off the queue, so it is ours to complete either way.
	if _, err := io.ReadFull(c.nc, r.dst); err != nil {
		err = fmt.Errorf("read read-response payload: %w", err)
		c.fail(err)
		c.completeRead(r, c.Err())
		return err
	}
	c.completeRead(r, nil)
	return nil
}

// ctlLoop writes read responses and standalone credit returns.
func (c *conn) ctlLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctlWake:
		case <-c.done:
			return
		}
		if err := c.flushCtl(); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *conn) flushCtl() error {
	for {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return nil
		}
		if c.resps.len() == 0 {
			c.mu.Unlock()
			break
		}
		// The response stays queued until written so that waitResps sees it.
		r := *c.resps.front()
		c.mu.Unlock()

		c.wmu.Lock()
		h := header{Type: frameReadResp, Length: uint32(len(r.src)), ID: r.tag}
		err := c.writeFrame(h, r.src)
		c.wmu.Unlock()
		if err != nil {
			return err
		}

		c.mu.Lock()
		if c.resps.len() > 0 && c.resps.front().seq == r.seq {
			c.resps.pop()
		}
		c.respSent = r.seq + 1
		if c.respWaiters {
			close(c.respWake)
			c.respWake = make(chan struct{})
			c.respWaiters = false
		}
		c.mu.Unlock()
	}

	// Credits ride on any frame; send a frame just for them only when
	// still due now that the lock is ours.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	due := c.creditFlushDue()
	c.mu.Unlock()
	if !due {
		return nil
	}
	return c.writeFrame(header{Type: frameCredit}, nil)
}
