package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Run boots a VM, sets up soft-RoCE and the NVMe drive in it, runs
// cfg.Command and returns its exit code and output. A nonzero exit code is
// not an error; a run that times out, or whose guest fails before the
// command reports its status, is (ErrTimeout, ErrNoResult), and the Result
// still carries the console and whatever output there was.
//
// Run kills qemu before it returns, whatever happens, and removes every
// file it made.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	if len(cfg.Command) == 0 {
		return nil, errors.New("run vm: no command")
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "vm: %s (%.1fs)\n",
				fmt.Sprintf(format, args...), time.Since(start).Seconds())
		}
	}

	kernel := cfg.Kernel
	if kernel == "" {
		k, err := FindKernel()
		if err != nil {
			return nil, fmt.Errorf("run vm: %w", err)
		}
		kernel = k
	}
	kver, err := kernelVersion(kernel)
	if err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("run vm: %w (apt-get install qemu-system-x86)", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}

	// Everything the run makes lives in one directory. The share must
	// exist before boot: the guest mounts it at the same path, which it
	// sees through the host root.
	removeStale(cfg.WorkDir)
	tmp, err := os.MkdirTemp(cfg.WorkDir, fmt.Sprintf("%s%d-", tmpPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmp, err = filepath.Abs(tmp)
	if err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}
	share := filepath.Join(tmp, "share")
	initrd := filepath.Join(tmp, "initramfs.cpio")
	nvme := filepath.Join(tmp, "nvme.img")

	progress("building initramfs")
	if err := os.Mkdir(share, 0o755); err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}
	if err := writeInitramfs(initrd, kver, initScript(share)); err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}
	env := guestEnv(share, os.Getenv("CI"), cfg.Env)
	script := runScript(share, cwd, env, cfg.Command)
	if err := os.WriteFile(filepath.Join(share, guestScript), []byte(script), 0o644); err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}
	if err := makeSparse(nvme, cfg.NVMeSize); err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}

	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, ErrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, qemuArgs(cfg, kernel, initrd, share, nvme)...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	console := &syncBuffer{}
	cmd.Stderr = console
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("run vm: %w", err)
	}

	progress("booting %s", kernel)
	qemuStart := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run vm: start qemu: %w", err)
	}
	// NB: a panic between Start and Wait must not leave qemu running.
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	res := &Result{ExitCode: -1}
	var failure string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			console.Write([]byte(line + "\n"))
			msg, ok := strings.CutPrefix(line, marker)
			if !ok {
				continue
			}
			switch {
			case strings.HasPrefix(msg, "fail "):
				failure = strings.TrimPrefix(msg, "fail ")
				progress("setup failed: %s", failure)
			case strings.HasPrefix(msg, "stage running "):
				res.Boot = time.Since(qemuStart)
				progress("%s", strings.TrimPrefix(msg, "stage "))
			case strings.HasPrefix(msg, "stage "):
				progress("%s", strings.TrimPrefix(msg, "stage "))
			}
		}
		io.Copy(io.Discard, stdout)
	}()

	stopTail := make(chan struct{})
	tailDone := make(chan struct{})
	go func() {
		defer close(tailDone)
		if cfg.Stdout != nil {
			tail(filepath.Join(share, outputFile), cfg.Stdout, stopTail)
		}
	}()

	<-consoleDone
	waitErr := cmd.Wait()
	close(stopTail)
	<-tailDone

	res.Duration = time.Since(start)
	res.Console = console.Bytes()
	res.Output, _ = os.ReadFile(filepath.Join(share, outputFile))
	code, codeErr := readExit(filepath.Join(share, exitFile))

	switch {
	case codeErr == nil:
		res.ExitCode = code
		progress("command exited with status %d", code)
		return res, nil
	case context.Cause(ctx) == ErrTimeout:
		progress("timed out, qemu killed")
		return res, fmt.Errorf("run vm: %w after %v", ErrTimeout, cfg.Timeout)
	case ctx.Err() != nil:
		return res, fmt.Errorf("run vm: %w", ctx.Err())
	case failure != "":
		return res, fmt.Errorf("run vm: %w: setup: %s", ErrNoResult, failure)
	case waitErr != nil:
		return res, fmt.Errorf("run vm: %w: qemu: %v", ErrNoResult, waitErr)
	}
	return res, fmt.Errorf("run vm: %w: %v", ErrNoResult, codeErr)
}

// tmpPrefix starts the names of Run's directories, followed by the pid of
// the process that made it.
const tmpPrefix = "ferry-vm-run-"

// removeStale removes the directories that runs of processes which no
// longer exist left in dir: a process killed by SIGKILL cannot clean up
// (its qemu dies with it).
func removeStale(dir string) {
	if dir == "" {
		dir = os.TempDir()
	}
	paths, _ := filepath.Glob(filepath.Join(dir, tmpPrefix+"*"))
	for _, p := range paths {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(p), tmpPrefix), "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(p)
		}
	}
}

func qemuArgs(cfg Config, kernel, initrd, share, nvme string) []string {
	return []string{
		"-machine", "pc,accel=tcg", "-cpu", "max",
		"-m", strconv.Itoa(cfg.MemoryMiB), "-smp", strconv.Itoa(cfg.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 mitigations=off",
		"-fsdev", "local,id=fs0,path=/,security_model=none,readonly=on,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=fs0,mount_tag=" + rootTag,
		"-fsdev", "local,id=fs1,path=" + share + ",security_model=none,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=fs1,mount_tag=" + resultsTag,
		"-drive", "file=" + nvme + ",if=none,id=nv0,format=raw",
		"-device", "nvme,serial=ferry0,drive=nv0",
	}
}

// makeSparse makes a file of size bytes that takes no space until written.
func makeSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("size nvme image: %w", err)
	}
	return f.Close()
}

func readExit(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, fmt.Errorf("read exit status: %w", err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1, fmt.Errorf("parse exit status %q: %w", b, err)
	}
	return code, nil
}

// tail copies what is appended to path to w until stop is closed, then
// copies the rest.
func tail(path string, w io.Writer, stop <-chan struct{}) {
	var off int64
	copyNew := func() {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		n, _ := io.Copy(w, io.NewSectionReader(f, off, 1<<62))
		off += n
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			copyNew()
			return
		case <-t.C:
			copyNew()
		}
	}
}

// syncBuffer is a bytes.Buffer that qemu's stderr and the console reader
// can write at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
