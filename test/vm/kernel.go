package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// bootModules are the modules the initramfs loads to reach the host's root
// file system over 9p and lay a writable overlay on it. Their dependencies
// come from modules.dep.
var bootModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay"}

// FindKernel returns the newest /boot/vmlinuz-* whose modules in
// /lib/modules include rdma_rxe, which the guest needs for soft-RoCE.
func FindKernel() (string, error) {
	return findKernel("/boot", "/lib/modules")
}

func findKernel(boot, modules string) (string, error) {
	paths, err := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if err != nil {
		return "", err
	}
	var versions []string
	for _, p := range paths {
		ver := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
		dep, err := os.ReadFile(filepath.Join(modules, ver, "modules.dep"))
		if err != nil {
			continue
		}
		if _, ok := parseModulesDep(dep)["rdma_rxe"]; ok {
			versions = append(versions, ver)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("find kernel: no %s/vmlinuz-* with rdma_rxe in %s "+
			"(apt-get install linux-image-amd64)", boot, modules)
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	return filepath.Join(boot, "vmlinuz-"+versions[len(versions)-1]), nil
}

// kernelVersion returns the release of a /boot/vmlinuz-<release> path.
func kernelVersion(kernel string) (string, error) {
	ver, ok := strings.CutPrefix(filepath.Base(kernel), "vmlinuz-")
	if !ok || ver == "" {
		return "", fmt.Errorf("kernel %s: name is not vmlinuz-<release>, "+
			"so its modules cannot be found", kernel)
	}
	return ver, nil
}

// versionLess compares kernel releases as sort -V would: runs of digits
// numerically, everything else byte by byte.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if da != db {
			na, errA := strconv.ParseUint(da, 10, 64)
			nb, errB := strconv.ParseUint(db, 10, 64)
			if errA == nil && errB == nil && na != nb {
				return na < nb
			}
			return da < db
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

// splitRun splits s after its leading run of digits, or of non-digits.
func splitRun(s string) (run, rest string) {
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	i := 1
	for i < len(s) && digit(s[i]) == digit(s[0]) {
		i++
	}
	return s[:i], s[i:]
}

// parseModulesDep maps module names (dashes as underscores) to their file
// and the files they depend on, as modules.dep lists them.
func parseModulesDep(dep []byte) map[string][]string {
	mods := make(map[string][]string)
	sc := bufio.NewScanner(bytes.NewReader(dep))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		file, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		mods[moduleName(file)] = append([]string{file}, strings.Fields(deps)...)
	}
	return mods
}

// moduleName turns kernel/fs/9p/9p.ko.xz into 9p.
func moduleName(file string) string {
	name := filepath.Base(file)
	if i := strings.Index(name, ".ko"); i >= 0 {
		name = name[:i]
	}
	return strings.ReplaceAll(name, "-", "_")
}

// moduleOrder returns the files of names and their dependencies, each
// after everything it depends on.
func moduleOrder(dep []byte, names []string) ([]string, error) {
	mods := parseModulesDep(dep)
	var order []string
	seen := make(map[string]bool)
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		if seen[name] {
			return nil
		}
		if depth > 64 {
			return fmt.Errorf("module %s: dependency loop", name)
		}
		entry, ok := mods[name]
		if !ok {
			return fmt.Errorf("module %s: not in modules.dep", name)
		}
		for _, d := range entry[1:] {
			if err := visit(moduleName(d), depth+1); err != nil {
				return err
			}
		}
		seen[name] = true
		order = append(order, entry[0])
		return nil
	}
	for _, n := range names {
		if err := visit(n, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// readModule returns a module file's contents, uncompressed, so that
// busybox insmod can load it whatever compression the distribution uses.
func readModule(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("read module %s: %w", path, err)
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(path, ".ko.xz"):
		return decompress(path, "xz")
	case strings.HasSuffix(path, ".ko.zst"):
		return decompress(path, "zstd")
	}
	return nil, fmt.Errorf("read module %s: unknown compression", path)
}

func decompress(path, tool string) ([]byte, error) {
	out, err := exec.Command(tool, "-dc", path).Output()
	if err != nil {
		return nil, fmt.Errorf("decompress module %s with %s: %w", path, tool, err)
	}
	return out, nil
}
