package rdma

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ferry-fabric/ferry/cgo"
	"github.com/ferry-fabric/ferry/fabric"
)

// Options configure a Transport.
type Options struct {
	// Logger receives connection events and protocol violations. Nil
	// discards them.
	Logger *slog.Logger
	// BusyPoll makes every connection spin on its completion queue
	// instead of sleeping on its completion channel: lower latency, one
	// core busy per connection. ConnOptions.BusyPoll asks for it per
	// connection.
	BusyPoll bool
	// Device names the RDMA device to use, as in "rxe0" or "mlx5_0".
	// Empty picks the first device librdmacm lists, which is right when
	// there is one. Connections whose address rdma_cm resolves to another
	// device are refused.
	Device string
	// SendQueueDepth bounds the work requests (sends, writes, reads) in
	// flight on one connection; posting waits while it is reached. Zero
	// means 256.
	SendQueueDepth int
}

// Transport is the RDMA provider of fabric.Transport: one device, one
// protection domain. Its regions may be reached by every connection it
// made.
type Transport struct {
	log     *slog.Logger
	busy    bool
	sqDepth int

	devs    *cgo.DeviceList
	dev     *cgo.Device
	attr    cgo.DeviceAttr
	pd      *cgo.PD
	rdDepth uint8
	memlock uint64

	mu        sync.Mutex
	regions   map[*region]struct{}
	conns     map[*conn]struct{}
	listeners map[*listener]struct{}
	closed    bool
}

var _ fabric.Transport = (*Transport)(nil)

// handshakeTimeout bounds connection set-up when the caller's context has
// no deadline, and always on the accepting side.
var handshakeTimeout = 5 * time.Second

// resolveTimeout is what rdma_cm gets for address and route resolution.
const resolveTimeout = 2 * time.Second

const defaultSendQueueDepth = 256

// New opens the RDMA device and allocates its protection domain. It fails
// with an error wrapping fabric.ErrNotSupported when the machine has no
// RDMA device or the binary was built without cgo.
func New(opts Options) (*Transport, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Transport{
		log:       log,
		busy:      opts.BusyPoll,
		regions:   make(map[*region]struct{}),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[*listener]struct{}),
	}
	t.memlock = raiseMemlock()

	devs, err := cgo.GetDevices()
	if err != nil {
		return nil, fmt.Errorf("open rdma transport: %w", err)
	}
	for _, d := range devs.Devices {
		if opts.Device == "" || d.Name == opts.Device {
			t.dev = d
			break
		}
	}
	if t.dev == nil {
		devs.Close()
		return nil, fmt.Errorf("open rdma transport: device %q not found: %w",
			opts.Device, cgo.ErrNoDevice)
	}
	t.devs = devs

	if t.attr, err = t.dev.Query(); err != nil {
		devs.Close()
		return nil, fmt.Errorf("open rdma transport: %w", err)
	}
	if t.pd, err = t.dev.AllocPD(); err != nil {
		devs.Close()
		return nil, fmt.Errorf("open rdma transport: %w", err)
	}
	t.rdDepth = uint8(min(t.attr.MaxQPRdAtom, t.attr.MaxQPInitRdAtom, 16))
	t.sqDepth = cmpOr(opts.SendQueueDepth, defaultSendQueueDepth)
	t.sqDepth = min(t.sqDepth, t.attr.MaxQPWR)

	if t.memlock < 64<<20 {
		log.Warn("rdma: RLIMIT_MEMLOCK is low; registrations may fail",
			"bytes", t.memlock, "device", t.dev.Name)
	}
	log.Debug("rdma: transport open", "device", t.dev.Name, "read_depth", t.rdDepth,
		"max_qp_wr", t.attr.MaxQPWR, "memlock", t.memlock)
	return t, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// raiseMemlock lifts RLIMIT_MEMLOCK as far as the process may (to
// unlimited as root) and returns the soft limit then in force.
func raiseMemlock() uint64 {
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf) == nil {
		return math.MaxUint64
	}
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r) != nil {
		return 0
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		unix.Setrlimit(unix.RLIMIT_MEMLOCK, &r)
		unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r)
	}
	return r.Cur
}

// Name returns "rdma".
func (t *Transport) Name() string { return "rdma" }

// Device names the RDMA device the transport uses.
func (t *Transport) Device() string { return t.dev.Name }

var errTransportClosed = errors.New("transport closed")

// memlockHint adds the memlock limit to a registration error that the
// limit may have caused.
func (t *Transport) memlockHint(err error) error {
	if errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EAGAIN) ||
		errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%w (RLIMIT_MEMLOCK is %d bytes: raise it, e.g. ulimit -l unlimited)",
			err, t.memlock)
	}
	return err
}

func ibvAccess(a fabric.Access) int {
	var f int
	if a&fabric.AccessLocalWrite != 0 {
		f |= cgo.AccessLocalWrite
	}
	if a&fabric.AccessRemoteRead != 0 {
		f |= cgo.AccessRemoteRead
	}
	if a&fabric.AccessRemoteWrite != 0 {
		// Verbs refuse remote write without local write.
		f |= cgo.AccessRemoteWrite | cgo.AccessLocalWrite
	}
	return f
}

// Register registers buf with the device (ibv_reg_mr) with the access
// flags matching access. The device keeps using buf until the region is
// closed: buf may be memory Go does not manage (an mmapped BPF map, an
// anonymous mapping) or Go memory, which is then pinned until Close.
func (t *Transport) Register(buf []byte, access fabric.Access) (fabric.MemoryRegion, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("register: empty buffer: %w", fabric.ErrRegion)
	}
	if uint64(len(buf)) > math.MaxUint32 {
		return nil, fmt.Errorf("register: %d bytes, at most %d: %w",
			len(buf), uint32(math.MaxUint32), fabric.ErrRegion)
	}
	r := &region{t: t, buf: buf, access: access, addr: uintptr(unsafe.Pointer(&buf[0]))}
	// A no-op for memory outside the Go heap.
	r.pin.Pin(&buf[0])

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		r.pin.Unpin()
		return nil, fmt.Errorf("register: %w", errTransportClosed)
	}
	mr, err := t.pd.RegMR(r.addr, len(buf), ibvAccess(access))
	if err != nil {
		r.pin.Unpin()
		return nil, fmt.Errorf("register: %w", t.memlockHint(err))
	}
	r.mr = mr
	t.regions[r] = struct{}{}
	return r, nil
}

// region is a registered buffer.
type region struct {
	t      *Transport
	buf    []byte
	addr   uintptr
	access fabric.Access
	mr     *cgo.MR
	pin    runtime.Pinner
	closed bool // guarded by t.mu
}

func (r *region) Bytes() []byte { return r.buf }

// Remote gives the buffer's virtual address and the region's rkey, as a
// peer's RDMA operations name them.
func (r *region) Remote() fabric.RemoteRegion {
	return fabric.RemoteRegion{Addr: uint64(r.addr), Key: r.mr.RKey(), Len: uint32(len(r.buf))}
}

func (r *region) Access() fabric.Access { return r.access }

// Close deregisters the region: peers' accesses fail from then on, and
// break their connection.
func (r *region) Close() error {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	return r.closeLocked()
}

func (r *region) closeLocked() error {
	if r.closed {
		return nil
	}
	r.closed = true
	delete(r.t.regions, r)
	err := r.mr.Close()
	r.pin.Unpin()
	if err != nil {
		return fmt.Errorf("close region: %w", err)
	}
	return nil
}

// local checks that mr is a live region of t and that [off, off+n) lies in
// it, and returns the address and local key.
func (t *Transport) local(mr fabric.MemoryRegion, off, n int) (uintptr, uint32, error) {
	r, ok := mr.(*region)
	if !ok || r.t != t {
		return 0, 0, fmt.Errorf("local region not registered with this transport: %w",
			fabric.ErrRegion)
	}
	t.mu.Lock()
	closed := r.closed
	t.mu.Unlock()
	if closed {
		return 0, 0, fmt.Errorf("local region deregistered: %w", fabric.ErrRegion)
	}
	if off < 0 || n < 0 || off > len(r.buf) || n > len(r.buf)-off {
		return 0, 0, fmt.Errorf("local [%d, +%d) outside region of %d bytes: %w",
			off, n, len(r.buf), fabric.ErrRegion)
	}
	return r.addr + uintptr(off), r.mr.LKey(), nil
}

// checkOptions applies the defaults and the device's limits.
func (t *Transport) checkOptions(o fabric.ConnOptions) (fabric.ConnOptions, error) {
	o = o.WithDefaults()
	if o.RecvDepth > maxRecvDepth || o.RecvDepth+1 > t.attr.MaxQPWR {
		return o, fmt.Errorf("receive depth %d over %d", o.RecvDepth,
			min(maxRecvDepth, t.attr.MaxQPWR-1))
	}
	if o.MaxMessage > maxMaxMessage {
		return o, fmt.Errorf("max message %d over %d", o.MaxMessage, maxMaxMessage)
	}
	return o, nil
}

// resolve turns host:port into an address, looking the host up if it is
// a name.
func resolve(ctx context.Context, addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w", port, err)
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p)), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return netip.AddrPort{}, lerr
		}
		if len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("host %q has no address", host)
		}
		ip = ips[0]
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("address %s: zones are %w", ip, fabric.ErrNotSupported)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// Close closes every listener and connection of t, deregisters its
// regions and frees the protection domain.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ls := make([]*listener, 0, len(t.listeners))
	for l := range t.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		cs = append(cs, c)
	}
	t.mu.Unlock()

	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.Close()
	}

	t.mu.Lock()
	var errs []error
	for r := range t.regions {
		errs = append(errs, r.closeLocked())
	}
	t.mu.Unlock()
	errs = append(errs, t.pd.Close(), t.devs.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close rdma transport: %w", err)
	}
	return nil
}

func (t *Transport) forget(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// adopt records a connection ready for use, or closes it when the
// transport closed meanwhile.
func (t *Transport) adopt(c *conn) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return errTransportClosed
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	return nil
}
