package initiator

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/fabric"
)

// Buffer is page-aligned memory registered with the client's transport:
// the target writes results and read blocks into it and pulls written
// blocks out of it, with no copy on this side.
type Buffer struct {
	mem []byte
	mr  fabric.MemoryRegion
	// A buffer made by Slice shares root's registration from offset off.
	root *Buffer
	off  int

	// inUse counts requests the target may still be touching the buffer
	// for.
	inUse     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// NewBuffer maps and registers size bytes.
func (c *Client) NewBuffer(size int) (*Buffer, error) {
	if size <= 0 {
		return nil, fmt.Errorf("new buffer: size %d", size)
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map buffer of %d bytes: %w", size, err)
	}
	mr, err := c.transport.Register(mem,
		fabric.AccessLocalWrite|fabric.AccessRemoteRead|fabric.AccessRemoteWrite)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("register buffer of %d bytes: %w", size, err)
	}
	return &Buffer{mem: mem, mr: mr}, nil
}

// Bytes is the buffer's memory. Do not touch it while a request that
// names the buffer is in flight.
func (b *Buffer) Bytes() []byte { return b.mem }

// Len is the buffer's size.
func (b *Buffer) Len() int { return len(b.mem) }

// Slice returns a view of n bytes at off that requests can name on their
// own, for example to read many ranges into one large buffer. It shares
// the registration: closing the view does nothing, closing the buffer it
// came from ends both.
func (b *Buffer) Slice(off, n int) (*Buffer, error) {
	if off < 0 || n <= 0 || off > len(b.mem) || n > len(b.mem)-off {
		return nil, fmt.Errorf("slice [%d, %d) of a %d-byte buffer", off, off+n, len(b.mem))
	}
	root := b.rootBuf()
	return &Buffer{mem: b.mem[off : off+n : off+n], mr: b.mr, root: root, off: b.off + off}, nil
}

func (b *Buffer) rootBuf() *Buffer {
	if b.root != nil {
		return b.root
	}
	return b
}

// Close waits until no request may still touch the buffer, then
// deregisters and unmaps it. On a view made by Slice it does nothing.
func (b *Buffer) Close() error {
	if b.root != nil {
		return nil
	}
	b.closeOnce.Do(func() {
		b.inUse.Wait()
		b.closeErr = b.mr.Close()
		if err := unix.Munmap(b.mem); err != nil && b.closeErr == nil {
			b.closeErr = err
		}
		b.mem = nil
	})
	return b.closeErr
}

func (b *Buffer) region(n int) (fabric.RemoteRegion, error) {
	if b == nil || b.rootBuf().mem == nil {
		return fabric.RemoteRegion{}, fmt.Errorf("buffer is closed")
	}
	r, ok := b.mr.Remote().Slice(uint64(b.off), uint64(n))
	if n > len(b.mem) {
		ok = false
	}
	if !ok {
		return fabric.RemoteRegion{}, fmt.Errorf("buffer of %d bytes cannot hold %d", len(b.mem), n)
	}
	return r, nil
}
