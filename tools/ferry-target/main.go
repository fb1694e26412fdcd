package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-fabric/ferry/bpf"
	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/target"
	"github.com/ferry-fabric/ferry/tools/internal/cli"
)

type nsFlags []string

func (n *nsFlags) String() string     { return strings.Join(*n, ",") }
func (n *nsFlags) Set(s string) error { *n = append(*n, s); return nil }

func main() {
	var (
		listen    = flag.String("listen", cli.DefaultAddr, "address to serve, `scheme://host:port`")
		blockSize = flag.Int("block-size", 4096, "block size of every namespace: 512 or 4096")
		workers   = flag.Int("workers", runtime.GOMAXPROCS(0), "extension runs at once")
		slots     = flag.Int("slots", 0, "extension slots of 1.25 MiB each (default 4 per worker)")
		depth     = flag.Int("queue-depth", 32, "requests in flight per connection")
		level     = flag.String("log-level", "info", "debug, info, warn or error")
		grace     = flag.Duration("shutdown-timeout", 30*time.Second, "how long to wait for requests in flight at shutdown")
		nss       nsFlags
	)
	flag.Var(&nss, "ns", "namespace as `id=path` (block device or file); repeatable")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: ferry-target [flags] -ns id=path ...\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	log, err := cli.Logger(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-target:", err)
		os.Exit(2)
	}
	if len(nss) == 0 {
		fmt.Fprintln(os.Stderr, "ferry-target: at least one -ns id=path is needed")
		flag.Usage()
		os.Exit(2)
	}
	if *slots <= 0 {
		*slots = 4 * *workers
	}
	if err := run(log, *listen, nss, *blockSize, *workers, *slots, *depth, *grace); err != nil {
		log.Error("ferry-target failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, listen string, nss []string, blockSize, workers, slots, depth int, grace time.Duration) error {
	var namespaces []*target.Namespace
	defer func() {
		for _, ns := range namespaces {
			ns.Close()
		}
	}()
	for _, spec := range nss {
		idText, path, ok := strings.Cut(spec, "=")
		id, err := strconv.ParseUint(idText, 10, 32)
		if !ok || err != nil || id == 0 {
			return fmt.Errorf("namespace %q: want id=path with a positive id", spec)
		}
		ns, err := target.OpenNamespace(uint32(id), path, blockSize, log)
		if err != nil {
			return err
		}
		namespaces = append(namespaces, ns)
	}

	engine, err := bpf.NewEngine(bpf.Config{Slots: slots, Logger: log})
	if err != nil {
		return fmt.Errorf("start extension engine: %w", err)
	}
	defer engine.Close()

	transport, hostport, err := cli.Transport(listen, log)
	if err != nil {
		return err
	}
	defer transport.Close()

	srv, err := target.NewServer(target.Config{
		Transport:  transport,
		Engine:     engine,
		Namespaces: namespaces,
		Workers:    workers,
		QueueDepth: depth,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	ln, err := transport.Listen(hostport, fabric.ConnOptions{RecvDepth: depth})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	log.Info("ferry-target ready", "listen", transport.Name()+"://"+ln.Addr(), "workers", workers,
		"slots", slots, "namespaces", len(namespaces))

	select {
	case <-ctx.Done():
		log.Info("signal received; finishing requests in flight")
	case err := <-served:
		if err != nil {
			return err
		}
	}
	ln.Close()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
