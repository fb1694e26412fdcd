package target

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/bpf"
	"github.com/ferry-fabric/ferry/fabric"
)

// maxELF bounds the extension image a target pulls.
const maxELF = 1 << 20

// One-sided operations wait without a deadline of their own: the memory
// they name must not be reused before the transport is done with it, and
// a broken connection completes them with an error anyway.
var opCtx = context.Background()

func (c *session) load(r *fabric.Load) (fabric.ResponseBody, error) {
	if r.Name == "" {
		return nil, fail(fabric.StatusBadRequest, "load without an extension name")
	}
	if r.ELF.Len == 0 || r.ELF.Len > maxELF {
		return nil, fail(fabric.StatusTooLarge, "extension image of %d bytes, want 1 to %d", r.ELF.Len, maxELF)
	}

	// Page-aligned memory of our own, because some providers pin what
	// they register.
	buf, err := unix.Mmap(-1, 0, int(r.ELF.Len), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map extension buffer: %w", err)
	}
	defer unix.Munmap(buf)
	mr, err := c.s.cfg.Transport.Register(buf, fabric.AccessLocalWrite)
	if err != nil {
		return nil, fmt.Errorf("register extension buffer: %w", err)
	}
	defer mr.Close()
	if err := c.ops.Read(opCtx, mr, 0, len(buf), r.ELF, 0); err != nil {
		return nil, remoteErr("pull extension image", err)
	}
	c.s.stats.pulledBytes.Add(uint64(len(buf)))

	prog, err := c.s.engine.Load(r.Name, buf)
	if err != nil {
		c.s.stats.rejected.Add(1)
		c.log().Warn("extension refused", "name", r.Name, "err", firstLine(err.Error()))
		switch {
		case errors.Is(err, bpf.ErrVerifier):
			return nil, fail(fabric.StatusVerifier, "%v", err)
		case errors.Is(err, bpf.ErrRejected):
			return nil, fail(fabric.StatusRejected, "%v", err)
		}
		return nil, err
	}
	// The reply carries the program name; one the wire cannot carry would
	// leave a loaded extension nobody can name.
	if len(prog.Program()) > fabric.MaxName {
		prog.Close()
		c.s.stats.rejected.Add(1)
		return nil, fail(fabric.StatusRejected, "program name of %d bytes, at most %d",
			len(prog.Program()), fabric.MaxName)
	}
	if !c.s.reserveExtension() {
		prog.Close()
		return nil, fail(fabric.StatusTooLarge, "target holds %d extensions, its limit",
			c.s.cfg.MaxTotalExtensions)
	}
	h, err := c.currentTenant().add(prog, c.s.cfg.MaxExtensions)
	if err != nil {
		c.s.releaseExtension()
		prog.Close()
		return nil, fail(fabric.StatusTooLarge, "%v", err)
	}
	c.s.stats.loaded.Add(1)
	c.log().Info("extension loaded", "name", r.Name, "handle", h, "program", prog.Program(),
		"insns", prog.Insns())
	return &fabric.LoadReply{Handle: h, Program: prog.Program(), Insns: uint32(prog.Insns())}, nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func (c *session) unload(r *fabric.Unload) (fabric.ResponseBody, error) {
	if !c.currentTenant().remove(r.Handle) {
		return nil, fail(fabric.StatusNoExtension, "no extension with handle %d", r.Handle)
	}
	c.log().Info("extension unloaded", "handle", r.Handle)
	return &fabric.Empty{}, nil
}

func (c *session) exec(r *fabric.Exec, resp *fabric.Response) (fabric.ResponseBody, error) {
	x := c.currentTenant().get(r.Handle)
	if x == nil {
		return nil, fail(fabric.StatusNoExtension, "no extension with handle %d", r.Handle)
	}
	defer x.release()
	ns, err := c.namespace(r.NS, r.LBA, r.Blocks)
	if err != nil {
		return nil, err
	}

	slot, err := c.s.engine.Acquire(c.ctx)
	if err != nil {
		return nil, fmt.Errorf("wait for a slot: %w", err)
	}
	defer c.s.engine.Release(slot)

	// A range larger than a slot runs as consecutive chunks; the extension
	// carries its state in out[] and result_len on its own slot. While one
	// chunk runs, the next ones are read into further slots when some are
	// free, so storage and the extension overlap.
	perChunk := uint64(len(slot.Data) / ns.BlockSize)
	chunks := max(1, (uint64(r.Blocks)+perChunk-1)/perChunk)
	rd := &readAhead{ns: ns, lba: r.LBA, end: r.LBA + uint64(r.Blocks), perChunk: perChunk,
		free: []*bpf.Slot{slot}}
	for uint64(len(rd.free)) < min(chunks, uint64(c.s.cfg.ReadAhead)+1) {
		extra, ok := c.s.engine.TryAcquire()
		if !ok {
			break
		}
		defer c.s.engine.Release(extra)
		rd.free = append(rd.free, extra)
	}
	defer rd.drain()
	for range len(rd.free) {
		rd.next()
	}

	in := bpf.RunInput{
		ResultCap: min(r.Result.Len, uint32(len(slot.Result))),
		BlockSize: uint32(ns.BlockSize),
	}
	copy(in.Args[:], r.Args)
	// An extension may claim result bytes it never wrote; they must not be
	// an earlier request's.
	clear(slot.Result[:in.ResultCap])
	for chunk := uint32(0); uint64(chunk) < chunks; chunk++ {
		if err := c.ctx.Err(); err != nil {
			return nil, fmt.Errorf("exec abandoned at chunk %d: %w", chunk, err)
		}
		p := rd.wait()
		resp.StorageNs += uint64(p.took)
		if p.err != nil {
			return nil, fail(fabric.StatusIO, "%v", p.err)
		}
		c.s.stats.storageRead.Add(uint64(p.bytes))

		in.Data, in.DataLen, in.Chunk, in.LBA = p.buf, uint32(p.bytes), chunk, p.lba
		c.s.workers <- struct{}{}
		out, err := c.s.engine.Run(x.prog, slot, in)
		<-c.s.workers
		resp.BpfNs += uint64(out.Duration)
		c.s.stats.execChunks.Add(1)
		if errors.Is(err, bpf.ErrBadOutput) {
			return nil, fail(fabric.StatusExtension, "%v", err)
		}
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", x.prog.Name(), err)
		}
		if out.Ret < 0 {
			return nil, fail(fabric.StatusExtension, "%s returned %d at chunk %d (blocks %d+%d)",
				x.prog.Name(), out.Ret, chunk, p.lba, p.bytes/ns.BlockSize)
		}
		in.Out, in.ResultLen = out.Out, out.ResultLen

		// That slot's data is consumed: read a later chunk into it.
		rd.reuse(p.buf)
	}

	// The result goes to the initiator straight from the result map.
	if in.ResultLen > 0 {
		if err := c.ops.Write(opCtx, c.s.resultMR, slot.ResultOffset(), int(in.ResultLen), r.Result, 0); err != nil {
			return nil, remoteErr("write result", err)
		}
		c.s.stats.sentBytes.Add(uint64(in.ResultLen))
	}
	return &fabric.ExecReply{ResultLen: in.ResultLen, Out: in.Out}, nil
}

// ioRange checks a block read or write and returns its size in bytes.
func (c *session) ioRange(nsID uint32, lba uint64, blocks uint32, region fabric.RemoteRegion) (*Namespace, int, error) {
	ns, err := c.namespace(nsID, lba, blocks)
	if err != nil {
		return nil, 0, err
	}
	total := uint64(blocks) * uint64(ns.BlockSize)
	if total > uint64(c.s.cfg.MaxIOBytes) {
		return nil, 0, fail(fabric.StatusTooLarge, "%d bytes in one request, at most %d", total, c.s.cfg.MaxIOBytes)
	}
	if region.Len%uint32(ns.BlockSize) != 0 {
		return nil, 0, fail(fabric.StatusUnaligned, "region of %d bytes is not a whole number of %d-byte blocks",
			region.Len, ns.BlockSize)
	}
	if uint64(region.Len) < total {
		return nil, 0, fail(fabric.StatusBadRequest, "region of %d bytes cannot hold %d blocks of %d bytes",
			region.Len, blocks, ns.BlockSize)
	}
	return ns, int(total), nil
}

func (c *session) readBlocks(r *fabric.ReadBlocks, resp *fabric.Response) (fabric.ResponseBody, error) {
	return c.moveBlocks(r.NS, r.LBA, r.Blocks, r.Dest, func(ns *Namespace, lba uint64, off, n, done int, last bool) error {
		t0 := time.Now()
		if err := ns.ReadAt(c.s.io.mem[off:off+n], lba); err != nil {
			return fail(fabric.StatusIO, "%v", err)
		}
		resp.StorageNs += uint64(time.Since(t0))
		c.s.stats.storageRead.Add(uint64(n))

		if err := c.ops.Write(opCtx, c.s.io.mr, off, n, r.Dest, uint64(done)); err != nil {
			return remoteErr("write blocks to initiator", err)
		}
		c.s.stats.sentBytes.Add(uint64(n))
		return nil
	})
}

func (c *session) writeBlocks(r *fabric.WriteBlocks, resp *fabric.Response) (fabric.ResponseBody, error) {
	return c.moveBlocks(r.NS, r.LBA, r.Blocks, r.Src, func(ns *Namespace, lba uint64, off, n, done int, last bool) error {
		if err := c.ops.Read(opCtx, c.s.io.mr, off, n, r.Src, uint64(done)); err != nil {
			return remoteErr("pull blocks from initiator", err)
		}
		c.s.stats.pulledBytes.Add(uint64(n))

		// FUA applies to the request as a whole: sync once, after the
		// last piece.
		t0 := time.Now()
		if err := ns.WriteAt(c.s.io.mem[off:off+n], lba, r.FUA && last); err != nil {
			return fail(fabric.StatusIO, "%v", err)
		}
		resp.StorageNs += uint64(time.Since(t0))
		c.s.stats.storageWritten.Add(uint64(n))
		return nil
	})
}

// moveBlocks checks a block read or write, takes an i/o buffer, and calls
// step for each buffer-sized piece: piece bytes at off in the pool's
// memory, for blocks from lba, done bytes into the request.
func (c *session) moveBlocks(nsID uint32, lba uint64, blocks uint32, region fabric.RemoteRegion,
	step func(ns *Namespace, lba uint64, off, n, done int, last bool) error,
) (fabric.ResponseBody, error) {
	ns, total, err := c.ioRange(nsID, lba, blocks, region)
	if err != nil {
		return nil, err
	}
	off, err := c.s.io.get(c.ctx)
	if err != nil {
		return nil, fmt.Errorf("wait for an i/o buffer: %w", err)
	}
	defer c.s.io.put(off)

	for done := 0; done < total; {
		n := min(total-done, c.s.io.size)
		if err := step(ns, lba+uint64(done/ns.BlockSize), off, n, done, done+n == total); err != nil {
			return nil, err
		}
		done += n
	}
	return &fabric.IOReply{Bytes: uint32(total)}, nil
}

func (c *session) flush(r *fabric.Flush, resp *fabric.Response) (fabric.ResponseBody, error) {
	ns, err := c.namespace(r.NS, 0, 0)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := ns.Flush(); err != nil {
		return nil, fail(fabric.StatusIO, "%v", err)
	}
	resp.StorageNs += uint64(time.Since(t0))
	return &fabric.Empty{}, nil
}

// readAhead reads the chunks of one exec request into a ring of slots,
// each read on its own goroutine, handing them out in order.
type readAhead struct {
	ns       *Namespace
	lba, end uint64
	perChunk uint64
	free     []*bpf.Slot // slots no read is filling and no run is using
	inFlight []chan chunkRead
	started  bool
}

type chunkRead struct {
	buf   *bpf.Slot
	lba   uint64
	bytes int
	took  time.Duration
	err   error
}

// next starts the read of the next chunk into a free slot, if any chunk
// is left. The first call may read an empty range: a request over zero
// blocks still runs the extension once.
func (r *readAhead) next() {
	if len(r.free) == 0 || (r.started && r.lba >= r.end) {
		return
	}
	r.started = true
	buf := r.free[0]
	r.free = r.free[1:]
	n := min(r.perChunk, r.end-r.lba)
	lba := r.lba
	r.lba += n
	ch := make(chan chunkRead, 1)
	r.inFlight = append(r.inFlight, ch)
	go func() {
		data := buf.Data[:n*uint64(r.ns.BlockSize)]
		t0 := time.Now()
		err := r.ns.ReadAt(data, lba)
		ch <- chunkRead{buf: buf, lba: lba, bytes: len(data), took: time.Since(t0), err: err}
	}()
}

// wait returns the oldest read once it is done.
func (r *readAhead) wait() chunkRead {
	ch := r.inFlight[0]
	r.inFlight = r.inFlight[1:]
	return <-ch
}

// reuse gives a consumed slot back to the ring and starts the next read.
func (r *readAhead) reuse(buf *bpf.Slot) {
	r.free = append(r.free, buf)
	r.next()
}

// drain waits for reads still running, which write into slot memory that
// must not be released under them.
func (r *readAhead) drain() {
	for _, ch := range r.inFlight {
		<-ch
	}
	r.inFlight = nil
}
