package vm

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks as an
// initramfs. It knows directories, regular files and symlinks, which is all
// an initramfs of busybox and a few modules needs.
type cpioWriter struct {
	w   *bufio.Writer
	n   int64
	ino int
	err error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriter(w), ino: 1}
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}

	// Magic, then 13 fields of 8 hex digits: ino, mode, uid, gid, nlink,
	// mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize,
	// check.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(b)
	c.n += int64(n)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) Dir(name string) { c.entry(name, 0o040755, nil) }

func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.entry(name, 0o100000|perm, data)
}

func (c *cpioWriter) Symlink(name, target string) { c.entry(name, 0o120777, []byte(target)) }

// Close writes the trailer and flushes.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, nil)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// findBusybox returns the path of a statically linked busybox, which the
// initramfs runs before any library is reachable.
func findBusybox() (string, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("find busybox: %w (apt-get install busybox-static)", err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("find busybox: %w", err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("find busybox: %s is dynamically linked "+
				"(apt-get install busybox-static)", p)
		}
	}
	return p, nil
}

// writeInitramfs writes to file an uncompressed initramfs with busybox, the
// modules that reach the host root over 9p, and the init script.
func writeInitramfs(file, kernelVer, initScript string) error {
	bb, err := findBusybox()
	if err != nil {
		return err
	}
	bbData, err := os.ReadFile(bb)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	modDir := filepath.Join("/lib/modules", kernelVer)
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("read modules of %s: %w", kernelVer, err)
	}
	mods, err := moduleOrder(dep, bootModules)
	if err != nil {
		return fmt.Errorf("resolve boot modules: %w", err)
	}

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	w := newCPIOWriter(f)
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "mnt/root", "modules"} {
		w.Dir(d)
	}
	w.File("bin/busybox", 0o755, bbData)
	w.Symlink("bin/sh", "busybox")
	w.File("init", 0o755, []byte(initScript))
	w.File("modprobe", 0o755, []byte(modprobeWrapper))

	// The modules are numbered so that the init script loads them in
	// dependency order with a glob.
	for i, m := range mods {
		data, err := readModule(filepath.Join(modDir, m))
		if err != nil {
			return err
		}
		name := fmt.Sprintf("modules/%02d-%s.ko", i, moduleName(path.Base(m)))
		w.File(name, 0o644, data)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	return f.Close()
}
