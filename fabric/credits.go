package fabric

import (
	"context"
	"sync"
)

// Credits counts the receive buffers a peer has posted for us. A provider
// takes one before each send and adds those the peer returns. It is here,
// not in each provider, so that every provider enforces flow control the
// same way.
type Credits struct {
	mu      sync.Mutex
	n       int
	waiters int
	// wake is closed and replaced when credits arrive while someone
	// waits; with nobody waiting, Add allocates nothing.
	wake   chan struct{}
	closed error
}

// NewCredits starts with n credits: the peer's receive depth.
func NewCredits(n int) *Credits {
	return &Credits{n: n, wake: make(chan struct{})}
}

// Take waits for a credit and takes it.
func (c *Credits) Take(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed != nil {
			err := c.closed
			c.mu.Unlock()
			return err
		}
		if c.n > 0 {
			c.n--
			c.mu.Unlock()
			return nil
		}
		wake := c.wake
		c.waiters++
		c.mu.Unlock()

		var err error
		select {
		case <-wake:
		case <-ctx.Done():
			err = ctx.Err()
		}
		c.mu.Lock()
		c.waiters--
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// Add returns n credits and wakes waiters.
func (c *Credits) Add(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.n += n
	if c.waiters > 0 {
		close(c.wake)
		c.wake = make(chan struct{})
	}
	c.mu.Unlock()
}

// Available is the number of credits now.
func (c *Credits) Available() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Close fails current and future Take calls with err.
func (c *Credits) Close(err error) {
	c.mu.Lock()
	if c.closed == nil {
		c.closed = err
		close(c.wake)
		c.wake = make(chan struct{})
	}
	c.mu.Unlock()
}
