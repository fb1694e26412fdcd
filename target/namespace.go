package target

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Namespace is a range of blocks backed by a block device or a regular
// file. Its methods take block addresses and whole blocks only.
type Namespace struct {
	ID        uint32
	Path      string
	BlockSize int
	Blocks    uint64
	// Direct is true when I/O bypasses the page cache.
	Direct bool

	f *os.File
	// buffered counts bytes moved through the page cache when !Direct.
	buffered atomic.Uint64
	// failed holds the first write or flush error. The kernel reports a
	// lost writeback once per file, to whichever caller asks first; every
	// later write and flush must fail too, or a flush could acknowledge
	// writes that were dropped.
	failed atomic.Pointer[error]
}

// OpenNamespace opens path with O_DIRECT, or buffered where the file
// system refuses O_DIRECT (tmpfs does), which it logs. blockSize must be
// 512 or 4096 and at least the device's logical block size.
func OpenNamespace(id uint32, path string, blockSize int, log *slog.Logger) (*Namespace, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if blockSize != 512 && blockSize != 4096 {
		return nil, fmt.Errorf("open namespace %d: block size %d, want 512 or 4096", id, blockSize)
	}

	direct := true
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open namespace %d: %w", id, err)
	}

	ns := &Namespace{ID: id, Path: path, BlockSize: blockSize, Direct: direct, f: f}
	if err := ns.size(log); err != nil {
		f.Close()
		return nil, fmt.Errorf("open namespace %d: %w", id, err)
	}
	if !direct {
		log.Warn("file system refuses O_DIRECT; namespace I/O goes through the page cache",
			"ns", id, "path", path)
	}
	log.Info("namespace open", "ns", id, "path", path, "block_size", blockSize,
		"blocks", ns.Blocks, "direct", direct)
	return ns, nil
}

func (ns *Namespace) size(log *slog.Logger) error {
	fi, err := ns.f.Stat()
	if err != nil {
		return err
	}

	var bytes uint64
	switch {
	case fi.Mode().IsRegular():
		bytes = uint64(fi.Size())
	case fi.Mode()&os.ModeDevice != 0:
		sz, err := unix.IoctlGetInt(int(ns.f.Fd()), unix.BLKSSZGET)
		if err != nil {
			return fmt.Errorf("get logical block size: %w", err)
		}
		if ns.BlockSize < sz || ns.BlockSize%sz != 0 {
			return fmt.Errorf("block size %d does not fit device logical block size %d", ns.BlockSize, sz)
		}
		end, err := ns.f.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("get device size: %w", err)
		}
		bytes = uint64(end)
	default:
		return fmt.Errorf("%s is neither a regular file nor a block device", ns.Path)
	}

	ns.Blocks = bytes / uint64(ns.BlockSize)
	if rest := bytes % uint64(ns.BlockSize); rest != 0 {
		log.Warn("namespace size is not a whole number of blocks; the tail is not served",
			"ns", ns.ID, "tail_bytes", rest)
	}
	if ns.Blocks == 0 {
		return fmt.Errorf("%s holds no whole block of %d bytes", ns.Path, ns.BlockSize)
	}
	return nil
}

// Info describes the namespace for a hello reply.
func (ns *Namespace) Info() (id uint32, blockSize uint32, blocks uint64) {
	return ns.ID, uint32(ns.BlockSize), ns.Blocks
}

// check validates a block range.
func (ns *Namespace) check(lba uint64, blocks uint64) error {
	if lba > ns.Blocks || blocks > ns.Blocks-lba {
		return fmt.Errorf("blocks [%d, %d) past the end of namespace %d (%d blocks)",
			lba, lba+blocks, ns.ID, ns.Blocks)
	}
	return nil
}

// ReadAt fills p, a whole number of blocks in page-aligned memory, from
// block lba.
func (ns *Namespace) ReadAt(p []byte, lba uint64) error {
	n, err := ns.f.ReadAt(p, int64(lba)*int64(ns.BlockSize))
	if err == nil && n != len(p) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("read %d bytes at block %d of namespace %d: %w", len(p), lba, ns.ID, err)
	}
	if !ns.Direct {
		ns.buffered.Add(uint64(n))
	}
	return nil
}

// WriteAt stores p at block lba. With fua it returns only once the data is
// durable.
func (ns *Namespace) WriteAt(p []byte, lba uint64, fua bool) error {
	if err := ns.failed.Load(); err != nil {
		return fmt.Errorf("namespace %d failed earlier: %w", ns.ID, *err)
	}
	if _, err := ns.f.WriteAt(p, int64(lba)*int64(ns.BlockSize)); err != nil {
		ns.failed.CompareAndSwap(nil, &err)
		return fmt.Errorf("write %d bytes at block %d of namespace %d: %w", len(p), lba, ns.ID, err)
	}
	if !ns.Direct {
		ns.buffered.Add(uint64(len(p)))
	}
	if fua {
		return ns.Flush()
	}
	return nil
}

// Flush makes every completed write durable.
func (ns *Namespace) Flush() error {
	if err := ns.failed.Load(); err != nil {
		return fmt.Errorf("namespace %d failed earlier: %w", ns.ID, *err)
	}
	if err := unix.Fdatasync(int(ns.f.Fd())); err != nil {
		ns.failed.CompareAndSwap(nil, &err)
		return fmt.Errorf("flush namespace %d: %w", ns.ID, err)
	}
	return nil
}

// Close closes the backing file.
func (ns *Namespace) Close() error { return ns.f.Close() }
