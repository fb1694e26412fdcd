package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferry-fabric/ferry/bpf/ext"
	"github.com/ferry-fabric/ferry/initiator"
	"github.com/ferry-fabric/ferry/rdma"
	"github.com/ferry-fabric/ferry/tools/internal/cli"
)

type command struct {
	name, args, help string
	run              func(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error
}

var commands = []command{
	{"load", "[flags] FILE.o", "load an extension from an ELF file and print its handle", cmdLoad},
	{"unload", "-handle H", "unload an extension", cmdUnload},
	{"exec", "(-handle H | -ext NAME | -elf FILE.o) -ns ID [flags]", "run an extension over blocks", cmdExec},
	{"read", "-ns ID -lba N -blocks N [-o FILE]", "read blocks (to a file, or a hex dump)", cmdRead},
	{"write", "-ns ID -lba N -i FILE [-fua]", "write a file's bytes to blocks", cmdWrite},
	{"flush", "-ns ID", "make acknowledged writes durable", cmdFlush},
	{"stats", "", "show the target's counters", cmdStats},
	{"info", "", "show the target's namespaces and limits", cmdInfo},
	{"extensions", "", "list the shipped extensions (usable with exec -ext)", cmdExtensions},
	{"rxe", "add|del|list [-name rxe0] [-netdev NAME]", "manage soft-RoCE devices on this host", cmdRxe},
}

type globals struct {
	target  string
	tenant  string
	json    bool
	timeout time.Duration
	out     io.Writer
}

func usage() {
	w := flag.CommandLine.Output()
	fmt.Fprintf(w, "usage: ferryctl COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.help)
	}
	fmt.Fprintf(w, "\nrun 'ferryctl COMMAND -help' for a command's flags\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	name := os.Args[1]
	for _, c := range commands {
		if c.name != name {
			continue
		}
		g := &globals{out: os.Stdout}
		fs := flag.NewFlagSet("ferryctl "+name, flag.ExitOnError)
		fs.StringVar(&g.target, "target", cli.DefaultAddr, "target address, `scheme://host:port`")
		fs.StringVar(&g.tenant, "tenant", "default", "tenant name")
		fs.BoolVar(&g.json, "json", false, "print JSON for scripts")
		fs.DurationVar(&g.timeout, "timeout", time.Minute, "give up after this long")
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: ferryctl %s %s\n\n%s\n\nflags:\n", c.name, c.args, c.help)
			fs.PrintDefaults()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		err := c.run(ctx, g, fs, os.Args[2:])
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "ferryctl %s: %v\n", name, err)
			var ve *initiator.VerifierError
			if errors.As(err, &ve) {
				fmt.Fprintf(os.Stderr, "\nverifier log:\n%s\n", ve.Log)
			}
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "ferryctl: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}

// dial connects for one command; done closes the client and releases the
// command's deadline.
func (g *globals) dial(ctx context.Context) (*initiator.Client, context.Context, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	c, err := initiator.Dial(ctx, g.target, initiator.Options{Tenant: g.tenant})
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return c, ctx, func() { c.Close(); cancel() }, nil
}

func (g *globals) print(v any, human func(w io.Writer)) error {
	if g.json {
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(g.out)
	return nil
}

func cmdLoad(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	name := fs.String("name", "", "extension name (default: the file name)")
	fs.Parse(argv)
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("one ELF file is needed")
	}
	elf, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if *name == "" {
		*name = strings.TrimSuffix(baseName(fs.Arg(0)), ".o")
	}
	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	x, err := c.Load(ctx, *name, elf)
	if err != nil {
		return err
	}
	return g.print(x, func(w io.Writer) {
		fmt.Fprintf(w, "loaded %s: handle %d, program %s, %d instructions\n", x.Name, x.Handle, x.Program, x.Insns)
	})
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func cmdUnload(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	handle := fs.Uint("handle", 0, "extension handle from load")
	fs.Parse(argv)
	if *handle == 0 {
		fs.Usage()
		return errors.New("-handle is needed")
	}
	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Unload(ctx, &initiator.Extension{Handle: uint32(*handle), Name: fmt.Sprint("handle ", *handle)}); err != nil {
		return err
	}
	return g.print(map[string]any{"unloaded": *handle}, func(w io.Writer) { fmt.Fprintf(w, "unloaded handle %d\n", *handle) })
}

// parseArgs reads "a,b,c" where each value is decimal or 0x-prefixed hex.
func parseArgs(s string) ([]uint64, error) {
	if s == "" {
		return nil, nil
	}
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// patternArgs packs a byte pattern the way the shipped grep extension
// reads it: length, then the bytes little-endian in two words.
func patternArgs(p string) ([]uint64, error) {
	if len(p) == 0 || len(p) > 16 {
		return nil, fmt.Errorf("pattern of %d bytes, want 1 to 16", len(p))
	}
	args := []uint64{uint64(len(p)), 0, 0}
	for i := 0; i < len(p); i++ {
		args[1+i/8] |= uint64(p[i]) << (8 * (i % 8))
	}
	return args, nil
}

type execOutput struct {
	Extension   string    `json:"extension"`
	Handle      uint32    `json:"handle"`
	NS          uint32    `json:"ns"`
	LBA         uint64    `json:"lba"`
	Blocks      uint32    `json:"blocks"`
	Out         [4]uint64 `json:"out"`
	ResultBytes int       `json:"result_bytes"`
	StorageUs   float64   `json:"storage_us"`
	BpfUs       float64   `json:"bpf_us"`
	WallUs      float64   `json:"wall_us"`
}

func cmdExec(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	var (
		handle  = fs.Uint("handle", 0, "run an extension loaded earlier")
		shipped = fs.String("ext", "", "run a shipped extension by name (see 'ferryctl extensions')")
		elfPath = fs.String("elf", "", "load this ELF, run it, unload it")
		ns      = fs.Uint("ns", 1, "namespace id")
		lba     = fs.Uint64("lba", 0, "first block")
		blocks  = fs.Uint("blocks", 0, "number of blocks (default: to the end of the namespace)")
		argText = fs.String("args", "", "extension arguments, comma separated u64 (decimal or 0x hex)")
		pattern = fs.String("pattern", "", "byte pattern for grep-style extensions (sets -args)")
		resSize = fs.Int("result-size", 256<<10, "bytes of result buffer to offer (0 for none)")
		outFile = fs.String("o", "", "write the result bytes to this file")
	)
	fs.Parse(argv)
	chosen := 0
	for _, set := range []bool{*handle != 0, *shipped != "", *elfPath != ""} {
		if set {
			chosen++
		}
	}
	if chosen != 1 {
		fs.Usage()
		return errors.New("give exactly one of -handle, -ext, -elf")
	}
	args, err := parseArgs(*argText)
	if err != nil {
		return err
	}
	if *pattern != "" {
		if args, err = patternArgs(*pattern); err != nil {
			return err
		}
	}

	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()

	x := &initiator.Extension{Handle: uint32(*handle), Name: fmt.Sprint("handle ", *handle)}
	if *handle == 0 {
		name, elf := *shipped, []byte(nil)
		if name != "" {
			var ok bool
			if elf, ok = ext.ELF(name); !ok {
				return fmt.Errorf("no shipped extension %q; try 'ferryctl extensions'", name)
			}
		} else {
			if elf, err = os.ReadFile(*elfPath); err != nil {
				return err
			}
			name = strings.TrimSuffix(baseName(*elfPath), ".o")
		}
		if x, err = c.Load(ctx, name, elf); err != nil {
			return err
		}
		defer c.Unload(context.Background(), x)
	}

	n := uint32(*blocks)
	if n == 0 {
		info, ok := c.Namespace(uint32(*ns))
		if !ok {
			return fmt.Errorf("target serves no namespace %d", *ns)
		}
		if *lba >= info.Blocks {
			return fmt.Errorf("lba %d is past the end of namespace %d (%d blocks)", *lba, *ns, info.Blocks)
		}
		n = uint32(min(info.Blocks-*lba, 1<<32-1))
	}
	var res *initiator.Buffer
	if *resSize > 0 {
		if res, err = c.NewBuffer(*resSize); err != nil {
			return err
		}
		defer res.Close()
	}

	start := time.Now()
	r, err := c.Exec(ctx, x, initiator.ExecRequest{NS: uint32(*ns), LBA: *lba, Blocks: n, Args: args}, res)
	if err != nil {
		return err
	}
	wall := time.Since(start)
	if *outFile != "" {
		if err := os.WriteFile(*outFile, r.Result, 0o644); err != nil {
			return err
		}
	}
	o := execOutput{Extension: x.Name, Handle: x.Handle, NS: uint32(*ns), LBA: *lba, Blocks: n, Out: r.Out,
		ResultBytes: len(r.Result), StorageUs: us(r.StorageTime), BpfUs: us(r.BpfTime), WallUs: us(wall)}
	return g.print(o, func(w io.Writer) {
		fmt.Fprintf(w, "%s over blocks %d+%d of namespace %d\n", x.Name, *lba, n, *ns)
		fmt.Fprintf(w, "  out:     %d %d %d %d\n", r.Out[0], r.Out[1], r.Out[2], r.Out[3])
		fmt.Fprintf(w, "  result:  %d bytes\n", len(r.Result))
		fmt.Fprintf(w, "  time:    %v wall, %v storage, %v in the extension (target side)\n",
			wall.Round(time.Microsecond), r.StorageTime.Round(time.Microsecond), r.BpfTime.Round(time.Microsecond))
		if len(r.Result) > 0 && *outFile == "" {
			fmt.Fprintf(w, "  first result bytes:\n%s", hex.Dump(r.Result[:min(len(r.Result), 128)]))
		}
	})
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func cmdRead(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	ns := fs.Uint("ns", 1, "namespace id")
	lba := fs.Uint64("lba", 0, "first block")
	blocks := fs.Uint("blocks", 1, "number of blocks")
	outFile := fs.String("o", "", "write the blocks to this file (default: hex dump)")
	fs.Parse(argv)
	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	info, ok := c.Namespace(uint32(*ns))
	if !ok {
		return fmt.Errorf("target serves no namespace %d", *ns)
	}
	buf, err := c.NewBuffer(int(*blocks) * int(info.BlockSize))
	if err != nil {
		return err
	}
	defer buf.Close()
	if err := c.ReadBlocks(ctx, uint32(*ns), *lba, uint32(*blocks), buf); err != nil {
		return err
	}
	if *outFile != "" {
		if err := os.WriteFile(*outFile, buf.Bytes(), 0o644); err != nil {
			return err
		}
		return g.print(map[string]any{"bytes": buf.Len(), "file": *outFile}, func(w io.Writer) {
			fmt.Fprintf(w, "read %d bytes into %s\n", buf.Len(), *outFile)
		})
	}
	return g.print(map[string]any{"bytes": buf.Len(), "data": buf.Bytes()}, func(w io.Writer) {
		fmt.Fprint(w, hex.Dump(buf.Bytes()))
	})
}

func cmdWrite(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	ns := fs.Uint("ns", 1, "namespace id")
	lba := fs.Uint64("lba", 0, "first block")
	inFile := fs.String("i", "", "file to write; its size must be whole blocks")
	fua := fs.Bool("fua", false, "make the write durable before it is acknowledged")
	fs.Parse(argv)
	if *inFile == "" {
		fs.Usage()
		return errors.New("-i FILE is needed")
	}
	data, err := os.ReadFile(*inFile)
	if err != nil {
		return err
	}
	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	info, ok := c.Namespace(uint32(*ns))
	if !ok {
		return fmt.Errorf("target serves no namespace %d", *ns)
	}
	if len(data) == 0 || len(data)%int(info.BlockSize) != 0 {
		return fmt.Errorf("%s holds %d bytes, not a whole number of %d-byte blocks", *inFile, len(data), info.BlockSize)
	}
	buf, err := c.NewBuffer(len(data))
	if err != nil {
		return err
	}
	defer buf.Close()
	copy(buf.Bytes(), data)
	blocks := uint32(len(data) / int(info.BlockSize))
	if err := c.WriteBlocks(ctx, uint32(*ns), *lba, blocks, buf, *fua); err != nil {
		return err
	}
	return g.print(map[string]any{"blocks": blocks, "lba": *lba}, func(w io.Writer) {
		fmt.Fprintf(w, "wrote %d blocks at %d of namespace %d\n", blocks, *lba, *ns)
	})
}

func cmdFlush(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	ns := fs.Uint("ns", 1, "namespace id")
	fs.Parse(argv)
	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Flush(ctx, uint32(*ns)); err != nil {
		return err
	}
	return g.print(map[string]any{"flushed": *ns}, func(w io.Writer) { fmt.Fprintf(w, "flushed namespace %d\n", *ns) })
}

func cmdStats(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	fs.Parse(argv)
	c, ctx, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	counters, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]uint64, len(counters))
	for _, ct := range counters {
		m[ct.Name] = ct.Value
	}
	return g.print(m, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, ct := range counters {
			fmt.Fprintf(tw, "%s\t%d\n", ct.Name, ct.Value)
		}
		tw.Flush()
	})
}

func cmdInfo(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	fs.Parse(argv)
	c, _, done, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	maxIO, maxResult := c.Limits()
	v := map[string]any{"namespaces": c.Namespaces(), "max_io_bytes": maxIO, "max_result_bytes": maxResult}
	return g.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "target %s: at most %d bytes per read or write, %d result bytes per exec\n",
			g.target, maxIO, maxResult)
		for _, ns := range c.Namespaces() {
			fmt.Fprintf(w, "  namespace %d: %d blocks of %d bytes (%d MiB)\n",
				ns.ID, ns.Blocks, ns.BlockSize, ns.Blocks*uint64(ns.BlockSize)>>20)
		}
	})
}

func cmdExtensions(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	fs.Parse(argv)
	names := ext.Names()
	sort.Strings(names)
	return g.print(names, func(w io.Writer) {
		for _, n := range names {
			fmt.Fprintln(w, n)
		}
	})
}

func cmdRxe(ctx context.Context, g *globals, fs *flag.FlagSet, argv []string) error {
	if len(argv) == 0 || strings.HasPrefix(argv[0], "-") {
		fs.Usage()
		return errors.New("want add, del or list")
	}
	action := argv[0]
	name := fs.String("name", "rxe0", "soft-RoCE device name")
	netdev := fs.String("netdev", "", "network interface the device runs on (add)")
	fs.Parse(argv[1:])

	switch action {
	case "add":
		if *netdev == "" {
			fs.Usage()
			return errors.New("add needs -netdev")
		}
		if err := rdma.AddRxe(*name, *netdev); err != nil {
			return err
		}
		dev, err := rdma.DeviceForNetdev(*netdev)
		if err != nil {
			return err
		}
		return g.print(map[string]string{"added": dev, "netdev": *netdev}, func(w io.Writer) {
			fmt.Fprintf(w, "added %s on %s\n", dev, *netdev)
		})
	case "del":
		if err := rdma.DelRxe(*name); err != nil {
			return err
		}
		return g.print(map[string]string{"deleted": *name}, func(w io.Writer) {
			fmt.Fprintf(w, "deleted %s\n", *name)
		})
	case "list":
		links, err := rdma.ListLinks()
		if err != nil {
			return err
		}
		return g.print(links, func(w io.Writer) {
			if len(links) == 0 {
				fmt.Fprintln(w, "no RDMA devices")
			}
			for _, l := range links {
				fmt.Fprintf(w, "%s\tports %d\tguid %s\tnetdevs %s\n", l.Name, l.NumPorts, l.NodeGUID,
					strings.Join(l.Netdevs, ","))
			}
		})
	}
	fs.Usage()
	return fmt.Errorf("unknown rxe action %q: want add, del or list", action)
}
