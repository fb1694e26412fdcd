package target

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func alignedBuf(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func writeFile(t *testing.T, dir string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(dir, "ns.dat")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestNamespaceReadWrite(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		path, data := writeFile(t, t.TempDir(), 64*4096+100)
		ns, err := OpenNamespace(1, path, bs, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		if want := uint64(len(data) / bs); ns.Blocks != want {
			t.Fatalf("bs %d: %d blocks, want %d (the partial tail is not served)", bs, ns.Blocks, want)
		}

		buf := alignedBuf(t, 4*bs)
		if err := ns.ReadAt(buf, 3); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[3*bs:7*bs]) {
			t.Fatalf("bs %d: read differs", bs)
		}
		rand.Read(buf)
		if err := ns.WriteAt(buf, ns.Blocks-4, true); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got[(ns.Blocks-4)*uint64(bs):ns.Blocks*uint64(bs)], buf) {
			t.Fatalf("bs %d: write not in the file", bs)
		}
		if err := ns.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNamespaceChecks(t *testing.T) {
	path, _ := writeFile(t, t.TempDir(), 8*4096)
	if _, err := OpenNamespace(1, path, 1024, nil); err == nil {
		t.Error("block size 1024 accepted")
	}
	if _, err := OpenNamespace(1, filepath.Join(t.TempDir(), "missing"), 4096, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	small, _ := writeFile(t, t.TempDir(), 100)
	if _, err := OpenNamespace(1, small, 512, nil); err == nil || !strings.Contains(err.Error(), "no whole block") {
		t.Errorf("file smaller than a block: %v", err)
	}
	if _, err := OpenNamespace(1, "/dev/null", 512, nil); err == nil {
		t.Error("a character device accepted")
	}

	ns, err := OpenNamespace(1, path, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, r := range [][2]uint64{{8, 1}, {7, 2}, {1 << 63, 1 << 63}, {0, 9}} {
		if err := ns.check(r[0], r[1]); err == nil {
			t.Errorf("range %d+%d of 8 blocks accepted", r[0], r[1])
		}
	}
	for _, r := range [][2]uint64{{0, 8}, {7, 1}, {8, 0}} {
		if err := ns.check(r[0], r[1]); err != nil {
			t.Errorf("range %d+%d: %v", r[0], r[1], err)
		}
	}
}

// TestNamespaceBufferedFallback opens a file on tmpfs, which refuses
// O_DIRECT before Linux 6.6: the namespace works through the page cache
// and counts it. Newer kernels accept O_DIRECT on tmpfs, and the test
// then has no file system to try the fallback on; it runs in the 6.1 VM.
func TestNamespaceBufferedFallback(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "ferry-ns-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("/dev/shm is not tmpfs here")
	}
	path, data := writeFile(t, dir, 4*4096)
	if f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0); err == nil {
		f.Close()
		t.Skip("this kernel's tmpfs accepts O_DIRECT (Linux 6.6 and later)")
	}
	ns, err := OpenNamespace(1, path, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.Direct {
		t.Fatal("tmpfs namespace claims O_DIRECT")
	}
	buf := alignedBuf(t, 4096)
	if err := ns.ReadAt(buf, 2); err != nil || !bytes.Equal(buf, data[8192:12288]) {
		t.Fatalf("buffered read: %v", err)
	}
	if got := ns.buffered.Load(); got != 4096 {
		t.Fatalf("buffered bytes %d, want 4096", got)
	}
}
