package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/internal/testenv"
)

// TestToolsUserExtension is the path a user takes: build the commands,
// compile an extension of their own with the clang command README.md
// gives, serve a file with ferry-target, then load and run the extension
// and move blocks with ferryctl.
func TestToolsUserExtension(t *testing.T) {
	if os.Getenv("FERRY_VM") != "" {
		t.Skip("builds the tools with the Go toolchain: runs on the host, not in the test VM")
	}
	testenv.RequireRoot(t)
	clang, err := exec.LookPath("clang")
	if err != nil {
		testenv.Missing(t, "no clang (make deps installs it)")
	}
	root := moduleRoot(t)
	bin := t.TempDir()

	build := exec.Command("go", "build", "-o", bin+"/", "./tools/ferry-target", "./tools/ferryctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tools: %v\n%s", err, out)
	}

	// The command README.md gives, with this test's file names.
	obj := filepath.Join(bin, "block_heads.o")
	cc := exec.Command(clang, "-O2", "-g", "-target", "bpf", "-Wall", "-I", "bpf/include",
		"-c", "test/e2e/testdata/block_heads.c", "-o", obj)
	cc.Dir = root
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("compile the user extension: %v\n%s", err, out)
	}
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	if !strings.Contains(string(readme), "clang -O2 -g -target bpf -Wall -I bpf/include -c ") {
		t.Fatal("README.md no longer gives the clang command this test uses")
	}

	const blocks = 64
	data := make([]byte, blocks*blockSize)
	rand.Read(data)
	nsPath := filepath.Join(t.TempDir(), "ns.dat")
	if err := os.WriteFile(nsPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + freeAddr(t)
	var targetLog bytes.Buffer
	tgt := exec.Command(filepath.Join(bin, "ferry-target"), "-listen", addr, "-ns", "1="+nsPath)
	tgt.Stderr = &targetLog
	if err := tgt.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- tgt.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			tgt.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ferry-target log:\n%s", targetLog.String())
		}
	}()

	ctl := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "ferryctl"), append(args[:1:1], append([]string{"-target", addr, "-json"}, args[1:]...)...)...)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("ferryctl %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	waitFor(t, func() bool {
		return exec.Command(filepath.Join(bin, "ferryctl"), "info", "-target", addr).Run() == nil
	})

	var loaded struct{ Handle uint32 }
	if err := json.Unmarshal(ctl("load", obj), &loaded); err != nil || loaded.Handle == 0 {
		t.Fatalf("load output: %v", err)
	}
	var ran struct{ Out [4]uint64 }
	out := ctl("exec", "-handle", fmt.Sprint(loaded.Handle), "-ns", "1", "-result-size", "0")
	if err := json.Unmarshal(out, &ran); err != nil {
		t.Fatalf("exec output %s: %v", out, err)
	}
	var want uint64
	for b := range blocks {
		want += binary.LittleEndian.Uint64(data[b*blockSize:])
	}
	if ran.Out[0] != want || ran.Out[1] != blocks {
		t.Fatalf("block_heads out = %v, want [%d %d ...]", ran.Out, want, blocks)
	}

	// Blocks in and out through files.
	in := filepath.Join(t.TempDir(), "in")
	payload := make([]byte, 2*blockSize)
	rand.Read(payload)
	os.WriteFile(in, payload, 0o600)
	ctl("write", "-ns", "1", "-lba", "10", "-i", in, "-fua")
	back := filepath.Join(t.TempDir(), "back")
	ctl("read", "-ns", "1", "-lba", "10", "-blocks", "2", "-o", back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, payload) {
		t.Fatal("blocks read back through ferryctl differ")
	}

	var stats map[string]uint64
	if err := json.Unmarshal(ctl("stats"), &stats); err != nil {
		t.Fatal(err)
	}
	if stats["exec_cpu_copy_bytes"] != 0 || stats["requests_exec"] != 1 {
		t.Fatalf("stats: exec_cpu_copy_bytes %d, requests_exec %d", stats["exec_cpu_copy_bytes"], stats["requests_exec"])
	}

	// SIGTERM: a clean exit.
	tgt.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("ferry-target exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ferry-target did not exit after SIGTERM")
	}
}

func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond until it holds, for up to 20 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met in 20 s")
}
