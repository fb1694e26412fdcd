// Command ferry-vm runs a command in a qemu guest that has soft-RoCE (rxe0)
// and an emulated NVMe drive, with the host's root file system as its
// root, and exits with the command's exit code.
//
//	ferry-vm [-timeout 10m] [-nvme-size 256M] -- ./bin/rdma.test -test.v
//
// Progress goes to stderr, the command's output to stdout. It exits 124 if
// the run timed out, 130 if interrupted, 125 if the VM failed otherwise
// (the guest console is then printed to stderr). It needs root,
// qemu-system-x86 and a Debian kernel with rdma_rxe; see package
// github.com/ferry-fabric/ferry/test/vm.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-fabric/ferry/test/vm"
)

func main() {
	var (
		timeout  = flag.Duration("timeout", vm.DefaultTimeout, "limit of the whole run, boot included")
		nvmeSize = flag.String("nvme-size", "256M", "size of the emulated NVMe drive (K, M, G suffixes)")
		memory   = flag.Int("memory", vm.DefaultMemoryMiB, "guest memory in MiB")
		cpus     = flag.Int("cpus", vm.DefaultCPUs, "guest CPUs")
		kernel   = flag.String("kernel", "", "guest kernel (default: newest with rdma_rxe)")
		quiet    = flag.Bool("q", false, "no progress lines")
		console  = flag.Bool("console", false, "print the guest console to stderr at the end")
		envs     envFlags
	)
	flag.Var(&envs, "env", "`NAME=value` for the command's environment; repeatable")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(),
			"usage: ferry-vm [flags] -- command [args...]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	size, err := parseSize(*nvmeSize)
	if err != nil {
		log.Error("bad -nvme-size", "err", err)
		os.Exit(2)
	}

	cfg := vm.Config{
		Command:   flag.Args(),
		Env:       map[string]string(envs),
		Timeout:   *timeout,
		NVMeSize:  size,
		MemoryMiB: *memory,
		CPUs:      *cpus,
		Kernel:    *kernel,
		Stdout:    os.Stdout,
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	// SIGINT and SIGTERM cancel the run; Run kills qemu and cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := vm.Run(ctx, cfg)
	stop()
	if res != nil && (*console || err != nil) {
		os.Stderr.Write(res.Console)
	}
	if err != nil {
		log.Error("vm run failed", "err", err)
		switch {
		case errors.Is(err, vm.ErrTimeout):
			os.Exit(124)
		case errors.Is(err, context.Canceled):
			os.Exit(130)
		}
		os.Exit(125)
	}
	log.Info("vm run done", "exit", res.ExitCode,
		"boot", res.Boot.Round(100*time.Millisecond),
		"total", res.Duration.Round(100*time.Millisecond))
	os.Exit(res.ExitCode)
}

type envFlags map[string]string

func (e *envFlags) String() string { return fmt.Sprint(map[string]string(*e)) }

func (e *envFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not NAME=value", s)
	}
	if *e == nil {
		*e = make(envFlags)
	}
	(*e)[k] = v
	return nil
}

// parseSize parses a byte count with an optional K, M or G (binary)
// suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with K, M or G", s)
	}
	return n * mult, nil
}
