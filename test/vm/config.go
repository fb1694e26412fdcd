package vm

import (
	"errors"
	"io"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultNVMeSize  = 256 << 20
	DefaultMemoryMiB = 2048
	DefaultCPUs      = 2
)

// Names and addresses the guest sets up and hands to the command in its
// environment.
const (
	RDMADevice = "rxe0"
	RDMANetdev = "veth0"
	// RDMAAddr is veth0's link-local address; the traffic never leaves
	// the guest.
	RDMAAddr   = "169.254.42.1"
	NVMeDevice = "/dev/nvme0n1"
)

// ErrTimeout is returned, wrapped, when the command did not finish within
// Config.Timeout. The VM has been killed by then.
var ErrTimeout = errors.New("vm timed out")

// ErrNoResult is returned, wrapped, when the guest stopped without
// reporting the command's exit status: it crashed, or setup failed. The
// Result's Console holds the guest's log.
var ErrNoResult = errors.New("guest reported no exit status")

// Config describes one VM run. The zero value of every field but Command
// means its default.
type Config struct {
	// Command runs inside the guest, with the host's root file system as
	// its root (read-only) and the host's current directory as its
	// working directory. Command[0] is looked up in PATH.
	Command []string

	// Env is added to the command's environment, after the FERRY_*
	// variables, so it can override them.
	Env map[string]string

	// Timeout bounds the whole run, boot included (default 10 minutes).
	Timeout time.Duration

	// NVMeSize is the size in bytes of the emulated NVMe drive's sparse
	// backing file (default 256 MiB).
	NVMeSize int64

	// MemoryMiB and CPUs size the guest (defaults 2048 and 2).
	MemoryMiB int
	CPUs      int

	// Kernel is the path of the guest kernel. By default, the newest
	// /boot/vmlinuz-* whose modules include rdma_rxe.
	Kernel string

	// Progress, if set, receives one line per boot stage, as in
	// "vm: booting /boot/vmlinuz-6.1.0-57-amd64 (0.1s)".
	Progress io.Writer

	// Stdout, if set, receives the command's output while it runs, in
	// addition to Result.Output.
	Stdout io.Writer

	// WorkDir is where the run's temporary directory is made (default
	// os.TempDir()). It must be on a file system that supports sparse
	// files. The run removes everything it made there.
	WorkDir string
}

// Result is what came back from a run.
type Result struct {
	// ExitCode is the command's exit status, or -1 if it never reported
	// one.
	ExitCode int

	// Output is the command's stdout and stderr, interleaved.
	Output []byte

	// Console is the guest's console: kernel messages and the setup
	// steps of the init script. Look here when setup fails.
	Console []byte

	// Duration is the wall time of the whole run, boot included.
	Duration time.Duration

	// Boot is the time from starting qemu until the command started.
	Boot time.Duration
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.NVMeSize <= 0 {
		c.NVMeSize = DefaultNVMeSize
	}
	if c.MemoryMiB <= 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.CPUs <= 0 {
		c.CPUs = DefaultCPUs
	}
	return c
}
