package vm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestVersionLess(t *testing.T) {
	got := []string{"6.12.9-amd64", "6.1.0-57-amd64", "6.1.0-9-amd64", "5.10.0-30-amd64",
		"6.12.10-amd64"}
	sort.Slice(got, func(i, j int) bool { return versionLess(got[i], got[j]) })
	want := []string{"5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-57-amd64", "6.12.9-amd64",
		"6.12.10-amd64"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
}

const testDep = `kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/fscache/fscache.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet.ko.xz:
kernel/fs/fscache/fscache.ko.xz: kernel/fs/netfs/netfs.ko.xz
kernel/fs/netfs/netfs.ko.xz:
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/virtio/virtio.ko.xz:
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko.xz:
`

func TestModuleOrder(t *testing.T) {
	got, err := moduleOrder([]byte(testDep), []string{"9pnet_virtio", "9p"})
	if err != nil {
		t.Fatal(err)
	}
	pos := make(map[string]int)
	for i, f := range got {
		pos[moduleName(f)] = i
	}
	if len(got) != 7 {
		t.Errorf("order %v: want 7 modules, each once", got)
	}
	for mod, deps := range map[string][]string{
		"9p":           {"9pnet", "fscache", "netfs"},
		"fscache":      {"netfs"},
		"9pnet_virtio": {"9pnet", "virtio", "virtio_ring"},
	} {
		for _, d := range deps {
			if pos[d] >= pos[mod] {
				t.Errorf("order %v: %s before its dependency %s", got, mod, d)
			}
		}
	}
	if _, err := moduleOrder([]byte(testDep), []string{"nosuch"}); err == nil {
		t.Error("moduleOrder of a missing module: no error")
	}
}

func TestFindKernel(t *testing.T) {
	dir := t.TempDir()
	boot, mods := filepath.Join(dir, "boot"), filepath.Join(dir, "modules")
	for ver, dep := range map[string]string{
		"6.1.0-9-amd64":  testDep,
		"6.1.0-57-amd64": testDep,
		"6.18.0-1-amd64": "kernel/fs/9p/9p.ko:\n", // no rdma_rxe
	} {
		if err := os.MkdirAll(filepath.Join(mods, ver), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(mods, ver, "modules.dep"), []byte(dep), 0o644)
		os.MkdirAll(boot, 0o755)
		os.WriteFile(filepath.Join(boot, "vmlinuz-"+ver), nil, 0o644)
	}
	os.WriteFile(filepath.Join(boot, "vmlinuz-7.0.0-no-modules"), nil, 0o644)

	got, err := findKernel(boot, mods)
	if want := filepath.Join(boot, "vmlinuz-6.1.0-57-amd64"); err != nil || got != want {
		t.Errorf("findKernel = %q, %v; want %q", got, err, want)
	}
	if _, err := findKernel(filepath.Join(dir, "none"), mods); err == nil {
		t.Error("findKernel with no kernels: no error")
	}
}

// TestCPIO checks the initramfs format against the cpio tool.
func TestCPIO(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("no cpio tool to check against")
	}
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.Dir("bin")
	w.File("bin/hello", 0o755, []byte("odd length"))
	w.Symlink("bin/sh", "hello")
	w.File("init", 0o755, []byte("#!/bin/sh\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin/hello")); string(b) != "odd length" {
		t.Errorf("bin/hello = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sh")); l != "hello" {
		t.Errorf("bin/sh links to %q, %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init: %v, %v", fi, err)
	}
}

// TestQuoting runs quoted strings through sh and gets them back.
func TestQuoting(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `a "b" $c \d` + "`e`", "new\nline", "--"} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shellQuote(%q) through sh = %q, %v", s, out, err)
		}
		out, err = exec.Command("sh", "-c", `printf %s "`+dquote(s)+`"`).Output()
		if err != nil || string(out) != s {
			t.Errorf("dquote(%q) through sh = %q, %v", s, out, err)
		}
	}
}

func TestGuestEnv(t *testing.T) {
	env := guestEnv("/w/share", "true", map[string]string{"FERRY_RDMA_DEV": "rxe9", "X": "y"})
	for _, want := range []string{"CI=true", "FERRY_RDMA_DEV=rxe9", "X=y", "FERRY_VM=1",
		"FERRY_SCRATCH=/w/share/scratch", "FERRY_RDMA_ADDR=" + RDMAAddr} {
		if !slices.Contains(env, want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "CI=") && kv != "CI=true" {
			t.Errorf("env has %s", kv)
		}
	}
}
