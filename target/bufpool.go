package target

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/fabric"
)

// bufPool hands out fixed-size, page-aligned buffers carved from one
// anonymous mapping that is registered with the transport once. Block
// reads and writes use it, so they never compete with extension runs for
// the engine's slots.
type bufPool struct {
	mem  []byte
	mr   fabric.MemoryRegion
	size int
	free chan int
}

func newBufPool(t fabric.Transport, count, size int) (*bufPool, error) {
	mem, err := unix.Mmap(-1, 0, count*size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map i/o buffers: %w", err)
	}
	mr, err := t.Register(mem, fabric.AccessLocalWrite)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("register i/o buffers: %w", err)
	}
	p := &bufPool{mem: mem, mr: mr, size: size, free: make(chan int, count)}
	for i := 0; i < count; i++ {
		p.free <- i
	}
	return p, nil
}

// get returns the offset of a free buffer in p.mem.
func (p *bufPool) get(ctx context.Context) (int, error) {
	select {
	case i := <-p.free:
		return i * p.size, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (p *bufPool) put(off int) { p.free <- off / p.size }

func (p *bufPool) close() {
	p.mr.Close()
	unix.Munmap(p.mem)
}
