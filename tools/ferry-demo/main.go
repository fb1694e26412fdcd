package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/bpf/ref"
	"github.com/ferry-fabric/ferry/initiator"
	"github.com/ferry-fabric/ferry/rdma"
	"github.com/ferry-fabric/ferry/tools/internal/cli"
)

// Record layout of the dataset: 64 bytes, little endian.
//
//	0  id     u64  sequence number
//	8  key    u64  uniform in [0, keySpace)
//	16 value  u64  uniform in [0, 1e9)
//	24 text   40 bytes of filler; about one record in a thousand says "FERRY!"
const (
	recSize   = 64
	keySpace  = 1_000_000
	blockSize = 4096
	needle    = "FERRY!"
)

type workload struct {
	name string
	args [8]uint64
	what string
}

var workloads = []workload{
	{"count", [8]uint64{recSize, 8, 2, 10_000}, "records with key < 10000"},
	{"filter", [8]uint64{recSize, 8, 2, 2_000}, "records with key < 2000, copied back"},
	{"aggregate", [8]uint64{recSize, 16}, "sum, min, max, count of value"},
	{"grep", ref.GrepPattern([]byte(needle)), "offsets of \"" + needle + "\""},
}

func main() {
	var (
		size    = flag.Int("size-mib", 64, "dataset size in MiB")
		dataset = flag.String("dataset", "", "file or block device to write the dataset to and serve "+
			"(default: a file in a new temporary directory); a device's old content is overwritten")
		listen = flag.String("listen", "tcp://127.0.0.1:0", "address for the target this demo starts; "+
			"port 0 picks a free TCP port")
		addr     = flag.String("target", "", "use a running target at this address instead of starting one")
		bin      = flag.String("target-bin", "", "ferry-target binary (default: next to this program)")
		seed     = flag.Uint64("seed", 1, "dataset seed")
		logLevel = flag.String("log-level", "warn", "log level of the demo and the target it starts")
	)
	flag.Parse()
	log, err := cli.Logger(*logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-demo:", err)
		os.Exit(2)
	}
	ok, err := run(log, *size, *dataset, *listen, *addr, *bin, *seed, *logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-demo:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "ferry-demo: results differ")
		os.Exit(1)
	}
}

func run(log *slog.Logger, sizeMiB int, path, listen, addr, bin string, seed uint64, level string) (bool, error) {
	ctx := context.Background()
	if addr != "" {
		return compare(ctx, log, addr, 0)
	}

	if path == "" {
		d, err := os.MkdirTemp("", "ferry-demo-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(d)
		path = filepath.Join(d, "records.dat")
	}
	fmt.Printf("writing %d MiB of %d-byte records to %s\n", sizeMiB, recSize, path)
	if err := writeDataset(path, sizeMiB<<20, seed); err != nil {
		return false, err
	}

	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return false, err
		}
		bin = filepath.Join(filepath.Dir(self), "ferry-target")
	}
	addr = listen
	if rest, ok := strings.CutPrefix(listen, "rdma://auto:"); ok {
		host, err := rdmaAddress()
		if err != nil {
			return false, err
		}
		addr = "rdma://" + host + ":" + rest
	}
	if strings.HasPrefix(listen, "tcp://") && strings.HasSuffix(listen, ":0") {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		addr = fmt.Sprintf("%s:%d", strings.TrimSuffix(listen, ":0"), port)
	}
	cmd := exec.Command(bin, "-listen", addr, "-ns", "1="+path, "-block-size", fmt.Sprint(blockSize),
		"-log-level", level)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	fmt.Printf("starting %s on %s\n", bin, addr)
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start target: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}()
	if err := waitReady(ctx, addr, exited); err != nil {
		return false, err
	}
	return compare(ctx, log, addr, uint64(sizeMiB)<<20)
}

// writeDataset writes size bytes of records, one block-aligned chunk at a
// time.
func writeDataset(path string, size int, seed uint64) error {
	// O_CREATE without O_TRUNC: a block device keeps its size, a new file
	// grows as written.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0xfe77))
	buf := make([]byte, 1<<20)
	var id uint64
	for done := 0; done < size; done += len(buf) {
		buf = buf[:min(len(buf), size-done)]
		for off := 0; off+recSize <= len(buf); off += recSize {
			r := buf[off : off+recSize]
			binary.LittleEndian.PutUint64(r[0:], id)
			binary.LittleEndian.PutUint64(r[8:], rng.Uint64N(keySpace))
			binary.LittleEndian.PutUint64(r[16:], rng.Uint64N(1_000_000_000))
			for i := 24; i < recSize; i++ {
				r[i] = 'a' + byte(rng.IntN(26))
			}
			if rng.IntN(1000) == 0 {
				copy(r[24+rng.IntN(40-len(needle)):], needle)
			}
			id++
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := f.Truncate(int64(size)); err != nil {
			f.Close()
			return err
		}
	}
	// The target reads with O_DIRECT: leave no dirty pages for its first
	// reads to wait on.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rdmaAddress returns an IPv4 address of a network interface that an RDMA
// device serves, for -listen rdma://auto:PORT.
func rdmaAddress() (string, error) {
	links, err := rdma.ListLinks()
	if err != nil {
		return "", fmt.Errorf("find an rdma device: %w", err)
	}
	for _, l := range links {
		for _, nd := range l.Netdevs {
			ifc, err := net.InterfaceByName(nd)
			if err != nil {
				continue
			}
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
					fmt.Printf("using %s on %s (%s)\n", l.Name, nd, ip.IP)
					return ip.IP.String(), nil
				}
			}
		}
	}
	return "", errors.New("no rdma device with an IPv4 address on its interface")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(ctx context.Context, addr string, exited <-chan error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := initiator.Dial(ctx, addr, initiator.Options{Tenant: "demo"})
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("target exited before it was ready: %v", werr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target at %s not ready after 15 s: %w", addr, err)
		}
	}
}

type row struct {
	name, what   string
	equal        bool
	pushBytes    uint64
	localBytes   uint64
	pushTime     time.Duration
	localTime    time.Duration
	out          [4]uint64
	resultLength int
}

// compare runs the workloads over the first size bytes of namespace 1, or
// all of it when size is 0.
func compare(ctx context.Context, log *slog.Logger, addr string, size uint64) (bool, error) {
	c, err := initiator.Dial(ctx, addr, initiator.Options{Tenant: "demo", Logger: log})
	if err != nil {
		return false, err
	}
	defer c.Close()
	ns, ok := c.Namespace(1)
	if !ok {
		return false, errors.New("target serves no namespace 1")
	}
	maxIO, maxResult := c.Limits()
	if size > 0 {
		if size/uint64(ns.BlockSize) > ns.Blocks {
			return false, fmt.Errorf("namespace 1 holds %d blocks, the dataset %d bytes", ns.Blocks, size)
		}
		ns.Blocks = size / uint64(ns.BlockSize)
	}
	total := ns.Blocks * uint64(ns.BlockSize)
	fmt.Printf("namespace 1: %d MiB in %d blocks of %d bytes\n\n", total>>20, ns.Blocks, ns.BlockSize)

	result, err := c.NewBuffer(maxResult)
	if err != nil {
		return false, err
	}
	defer result.Close()
	all, err := c.NewBuffer(int(total))
	if err != nil {
		return false, err
	}
	defer all.Close()

	var rows []row
	allEqual := true
	m := &meter{c: c}
	for _, w := range workloads {
		elf, _ := ext.ELF(w.name)
		x, err := c.Load(ctx, w.name, elf)
		if err != nil {
			return false, err
		}

		// Pushed down: one exec over the whole namespace.
		before, err := m.moved(ctx)
		if err != nil {
			return false, err
		}
		start := time.Now()
		res, err := c.Exec(ctx, x, initiator.ExecRequest{NS: 1, Blocks: uint32(ns.Blocks), Args: w.args[:]}, result)
		if err != nil {
			return false, err
		}
		r := row{name: w.name, what: w.what, pushTime: time.Since(start), out: res.Out, resultLength: len(res.Result)}
		after, err := m.moved(ctx)
		if err != nil {
			return false, err
		}
		r.pushBytes = after - before

		// Read everything, compute locally.
		start = time.Now()
		perReq := uint64(min(maxIO, 1<<20) / int(ns.BlockSize))
		if err := readAll(ctx, c, all, ns.Blocks, perReq, int(ns.BlockSize), 4); err != nil {
			return false, err
		}
		out, local, err := ref.Run(ref.Funcs[w.name], all.Bytes(), ns.BlockSize, 0, w.args, maxResult, ref.ChunkMax)
		if err != nil {
			return false, err
		}
		r.localTime = time.Since(start)
		final, err := m.moved(ctx)
		if err != nil {
			return false, err
		}
		r.localBytes = final - after

		r.equal = out == res.Out && bytes.Equal(local, res.Result)
		allEqual = allEqual && r.equal
		rows = append(rows, r)
		if err := c.Unload(ctx, x); err != nil {
			return false, err
		}
	}

	printTable(rows)
	copied, err := counter(ctx, c, "exec_cpu_copy_bytes")
	if err != nil {
		return false, err
	}
	fmt.Printf("\ntarget CPU-copied bytes on the exec path: %d\n", copied)
	fmt.Println("bytes moved: one-sided data both ways plus request and reply messages")
	return allEqual, nil
}

// readAll reads the whole namespace into all, with up to depth requests
// in flight, each landing in its place of the buffer.
func readAll(ctx context.Context, c *initiator.Client, all *initiator.Buffer, blocks, perReq uint64,
	bs int, depth int) error {
	var wg sync.WaitGroup
	errs := make(chan error, depth)
	next := make(chan uint64)
	for range depth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lba := range next {
				n := min(perReq, blocks-lba)
				view, err := all.Slice(int(lba)*bs, int(n)*bs)
				if err == nil {
					err = c.ReadBlocks(ctx, 1, lba, uint32(n), view)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for lba := uint64(0); lba < blocks; lba += perReq {
		select {
		case next <- lba:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// meter measures bytes moved over the transport: what the target sent by
// one-sided writes and pulled by one-sided reads, plus this client's
// request and reply messages, less the stats calls the meter itself makes.
type meter struct {
	c          *initiator.Client
	statsBytes uint64
}

func (m *meter) moved(ctx context.Context) (uint64, error) {
	t0 := m.c.Traffic()
	oneSided, err := counter(ctx, m.c, "fabric_sent_bytes")
	if err != nil {
		return 0, err
	}
	pulled, err := counter(ctx, m.c, "fabric_pulled_bytes")
	if err != nil {
		return 0, err
	}
	t1 := m.c.Traffic()
	m.statsBytes += t1.SentBytes + t1.ReceivedBytes - t0.SentBytes - t0.ReceivedBytes
	return oneSided + pulled + t1.SentBytes + t1.ReceivedBytes - m.statsBytes, nil
}

func counter(ctx context.Context, c *initiator.Client, name string) (uint64, error) {
	cs, err := c.Stats(ctx)
	if err != nil {
		return 0, err
	}
	for _, ct := range cs {
		if ct.Name == name {
			return ct.Value, nil
		}
	}
	return 0, fmt.Errorf("target reports no counter %q", name)
}

func printTable(rows []row) {
	fmt.Printf("%-10s %-6s %14s %14s %10s %12s %12s %8s\n",
		"extension", "equal", "pushdown", "read-all", "less data", "pushdown", "read-all", "speedup")
	fmt.Printf("%-10s %-6s %14s %14s %10s %12s %12s %8s\n",
		"", "", "bytes moved", "bytes moved", "(ratio)", "wall", "wall", "")
	fmt.Println(strings.Repeat("-", 94))
	for _, r := range rows {
		eq := "yes"
		if !r.equal {
			eq = "NO"
		}
		ratio := fmt.Sprintf("%.0fx", float64(r.localBytes)/float64(max(r.pushBytes, 1)))
		fmt.Printf("%-10s %-6s %14d %14d %10s %12v %12v %7.1fx\n", r.name, eq, r.pushBytes, r.localBytes, ratio,
			r.pushTime.Round(time.Microsecond), r.localTime.Round(time.Microsecond),
			float64(r.localTime)/float64(r.pushTime))
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("  %-10s %s: out=%v, %d result bytes\n", r.name, r.what, r.out, r.resultLength)
	}
}
