//go:build cgo

package cgo

/*
#cgo LDFLAGS: -libverbs -lrdmacm
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <endian.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

static int ferry_set_nonblock(int fd) {
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int ferry_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *a) {
	return ibv_query_port(ctx, port, a);
}

// ferry_wc is struct ibv_wc flattened to what Go reads.
struct ferry_wc {
	uint64_t wr_id;
	uint32_t status, opcode, vendor_err, byte_len, imm, flags, qp_num, pad;
};

static int ferry_poll_cq(struct ibv_cq *cq, struct ibv_wc *wc, struct ferry_wc *out, int n) {
	int got = ibv_poll_cq(cq, n, wc);
	for (int i = 0; i < got; i++) {
		out[i].wr_id = wc[i].wr_id;
		out[i].status = wc[i].status;
		out[i].opcode = wc[i].opcode;
		out[i].vendor_err = wc[i].vendor_err;
		out[i].byte_len = wc[i].byte_len;
		out[i].imm = ntohl(wc[i].imm_data);
		out[i].flags = wc[i].wc_flags;
		out[i].qp_num = wc[i].qp_num;
	}
	return got;
}

static int ferry_req_notify(struct ibv_cq *cq, int solicited) {
	return ibv_req_notify_cq(cq, solicited);
}

static struct ibv_mr *ferry_reg_mr(struct ibv_pd *pd, uintptr_t addr, size_t len, int access) {
	return ibv_reg_mr(pd, (void *)addr, len, access);
}

static uint64_t ferry_guid(struct ibv_device *d) { return be64toh(ibv_get_device_guid(d)); }

static struct ibv_context *ferry_ctx_at(struct ibv_context **l, int i) { return l[i]; }
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

func init() {
	// The Go constants are the C enum values; check once.
	for _, p := range [][2]int{
		{AccessLocalWrite, C.IBV_ACCESS_LOCAL_WRITE}, {AccessRemoteWrite, C.IBV_ACCESS_REMOTE_WRITE},
		{AccessRemoteRead, C.IBV_ACCESS_REMOTE_READ},
		{WRRDMAWrite, C.IBV_WR_RDMA_WRITE}, {WRRDMAWriteWithImm, C.IBV_WR_RDMA_WRITE_WITH_IMM},
		{WRSend, C.IBV_WR_SEND}, {WRSendWithImm, C.IBV_WR_SEND_WITH_IMM},
		{WRRDMARead, C.IBV_WR_RDMA_READ},
		{SendFence, C.IBV_SEND_FENCE}, {SendSignaled, C.IBV_SEND_SIGNALED},
		{SendInline, C.IBV_SEND_INLINE},
		{WCSend, C.IBV_WC_SEND}, {WCRDMAWrite, C.IBV_WC_RDMA_WRITE}, {WCRDMARead, C.IBV_WC_RDMA_READ},
		{WCRecv, C.IBV_WC_RECV}, {WCRecvRDMAImm, C.IBV_WC_RECV_RDMA_WITH_IMM},
		{WCFlagWithImm, C.IBV_WC_WITH_IMM},
		{int(WCFlushErr), C.IBV_WC_WR_FLUSH_ERR}, {int(WCRemAccessErr), C.IBV_WC_REM_ACCESS_ERR},
		{int(EventTimewaitExit), C.RDMA_CM_EVENT_TIMEWAIT_EXIT},
		{int(EventDisconnected), C.RDMA_CM_EVENT_DISCONNECTED},
	} {
		if p[0] != p[1] {
			panic(fmt.Sprintf("cgo: constant %d is %d in the C headers", p[0], p[1]))
		}
	}
}

// errnoOr returns err if it is an errno, else fallback: some calls fail
// without setting errno.
func errnoOr(err error, fallback syscall.Errno) error {
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return fallback
}

// Device is an opened RDMA device (struct ibv_context) as librdmacm opens
// it, so that rdma_cm identifiers bound to it use the same context.
type Device struct {
	ctx  *C.struct_ibv_context
	Name string
	GUID uint64
}

// DeviceList is the devices librdmacm has opened (rdma_get_devices). The
// Devices stay valid until Close.
type DeviceList struct {
	list    **C.struct_ibv_context
	Devices []*Device
	once    sync.Once
}

// GetDevices opens every RDMA device. It fails with an error wrapping
// ErrNoDevice when there is none.
func GetDevices() (*DeviceList, error) {
	var n C.int
	list, err := C.rdma_get_devices(&n)
	if list == nil {
		if err != nil && !errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("get rdma devices: %w: %w", ErrNoDevice, err)
		}
		return nil, fmt.Errorf("get rdma devices: %w", ErrNoDevice)
	}
	if n == 0 {
		C.rdma_free_devices(list)
		return nil, fmt.Errorf("get rdma devices: %w", ErrNoDevice)
	}
	open.deviceLists.Add(1)
	dl := &DeviceList{list: list}
	for i := range int(n) {
		ctx := C.ferry_ctx_at(list, C.int(i))
		dl.Devices = append(dl.Devices, &Device{
			ctx:  ctx,
			Name: C.GoString(C.ibv_get_device_name(ctx.device)),
			GUID: uint64(C.ferry_guid(ctx.device)),
		})
	}
	return dl, nil
}

// Close frees the list. Objects created on its devices must be closed
// first.
func (l *DeviceList) Close() error {
	l.once.Do(func() {
		C.rdma_free_devices(l.list)
		open.deviceLists.Add(-1)
	})
	return nil
}

// Query returns the device's limits.
func (d *Device) Query() (DeviceAttr, error) {
	var a C.struct_ibv_device_attr
	if r := C.ibv_query_device(d.ctx, &a); r != 0 {
		return DeviceAttr{}, fmt.Errorf("query device %s: %w", d.Name, syscall.Errno(r))
	}
	return DeviceAttr{
		MaxMRSize:       uint64(a.max_mr_size),
		MaxQPWR:         int(a.max_qp_wr),
		MaxSGE:          int(a.max_sge),
		MaxCQE:          int(a.max_cqe),
		MaxMR:           int(a.max_mr),
		MaxQPRdAtom:     int(a.max_qp_rd_atom),
		MaxQPInitRdAtom: int(a.max_qp_init_rd_atom),
	}, nil
}

// QueryPort returns the state of port (numbered from 1).
func (d *Device) QueryPort(port int) (PortAttr, error) {
	var a C.struct_ibv_port_attr
	if r := C.ferry_query_port(d.ctx, C.uint8_t(port), &a); r != 0 {
		return PortAttr{}, fmt.Errorf("query port %s/%d: %w", d.Name, port, syscall.Errno(r))
	}
	return PortAttr{
		State:     int(a.state),
		ActiveMTU: int(a.active_mtu),
		MaxMsgSz:  uint32(a.max_msg_sz),
		LinkLayer: int(a.link_layer),
	}, nil
}

// PD is a protection domain.
type PD struct {
	pd   *C.struct_ibv_pd
	once sync.Once
}

// AllocPD allocates a protection domain on d.
func (d *Device) AllocPD() (*PD, error) {
	pd, err := C.ibv_alloc_pd(d.ctx)
	if pd == nil {
		return nil, fmt.Errorf("alloc pd on %s: %w", d.Name, errnoOr(err, syscall.ENOMEM))
	}
	open.pds.Add(1)
	return &PD{pd: pd}, nil
}

// Close deallocates the domain; it fails with EBUSY while regions or
// queue pairs use it.
func (p *PD) Close() error {
	var err error
	p.once.Do(func() {
		if r := C.ibv_dealloc_pd(p.pd); r != 0 {
			err = fmt.Errorf("dealloc pd: %w", syscall.Errno(r))
			return
		}
		open.pds.Add(-1)
	})
	return err
}

// MR is a registered memory region.
type MR struct {
	mr   *C.struct_ibv_mr
	once sync.Once
}

// RegMR registers length bytes at addr with the access flags (Access*).
// The memory must stay mapped until the region is closed; see the package
// documentation about Go memory.
func (p *PD) RegMR(addr uintptr, length int, access int) (*MR, error) {
	// An address, not a Go pointer: the caller owns the memory's lifetime
	// (see the package documentation).
	mr, err := C.ferry_reg_mr(p.pd, C.uintptr_t(addr), C.size_t(length), C.int(access))
	if mr == nil {
		return nil, fmt.Errorf("register %d bytes: %w", length, errnoOr(err, syscall.EINVAL))
	}
	open.mrs.Add(1)
	return &MR{mr: mr}, nil
}

func (m *MR) LKey() uint32 { return uint32(m.mr.lkey) }
func (m *MR) RKey() uint32 { return uint32(m.mr.rkey) }

// Close deregisters the region.
func (m *MR) Close() error {
	var err error
	m.once.Do(func() {
		if r := C.ibv_dereg_mr(m.mr); r != 0 {
			err = fmt.Errorf("deregister memory: %w", syscall.Errno(r))
			return
		}
		open.mrs.Add(-1)
	})
	return err
}

// CompChannel is a completion channel: a descriptor that becomes readable
// when a completion queue armed with ReqNotify gets a completion.
type CompChannel struct {
	ch   *C.struct_ibv_comp_channel
	once sync.Once
}

// CreateCompChannel creates a non-blocking completion channel on d.
func (d *Device) CreateCompChannel() (*CompChannel, error) {
	ch, err := C.ibv_create_comp_channel(d.ctx)
	if ch == nil {
		return nil, fmt.Errorf("create completion channel: %w", errnoOr(err, syscall.ENOMEM))
	}
	if r, err := C.ferry_set_nonblock(ch.fd); r != 0 {
		C.ibv_destroy_comp_channel(ch)
		return nil, fmt.Errorf("create completion channel: set non-blocking: %w", err)
	}
	open.compChannels.Add(1)
	return &CompChannel{ch: ch}, nil
}

// Fd is the channel's descriptor, for waiting until it is readable.
func (c *CompChannel) Fd() int { return int(c.ch.fd) }

// Close destroys the channel; its completion queues must be closed first.
func (c *CompChannel) Close() error {
	var err error
	c.once.Do(func() {
		if r := C.ibv_destroy_comp_channel(c.ch); r != 0 {
			err = fmt.Errorf("destroy completion channel: %w", syscall.Errno(r))
			return
		}
		open.compChannels.Add(-1)
	})
	return err
}

// CQ is a completion queue with a C array for batched polling.
type CQ struct {
	cq    *C.struct_ibv_cq
	wc    *C.struct_ibv_wc
	out   *C.struct_ferry_wc
	batch int
	// unacked counts events taken with GetEvent and not yet acknowledged.
	mu      sync.Mutex
	unacked int
	once    sync.Once
}

// CreateCQ creates a queue of at least cqe entries on d, reporting to ch
// (which may be nil), polled batch completions at a time.
func (d *Device) CreateCQ(cqe int, ch *CompChannel, batch int) (*CQ, error) {
	var cch *C.struct_ibv_comp_channel
	if ch != nil {
		cch = ch.ch
	}
	cq, err := C.ibv_create_cq(d.ctx, C.int(cqe), nil, cch, 0)
	if cq == nil {
		return nil, fmt.Errorf("create completion queue of %d: %w", cqe, errnoOr(err, syscall.ENOMEM))
	}
	if batch <= 0 {
		batch = 16
	}
	q := &CQ{cq: cq, batch: batch}
	n := C.size_t(batch)
	q.wc = (*C.struct_ibv_wc)(C.calloc(n, C.size_t(unsafe.Sizeof(C.struct_ibv_wc{}))))
	q.out = (*C.struct_ferry_wc)(C.calloc(n, C.size_t(unsafe.Sizeof(C.struct_ferry_wc{}))))
	open.cqs.Add(1)
	return q, nil
}

// Poll moves up to len(wcs) completions (at most the batch size) into wcs.
func (q *CQ) Poll(wcs []WC) (int, error) {
	n := min(len(wcs), q.batch)
	got := int(C.ferry_poll_cq(q.cq, q.wc, q.out, C.int(n)))
	if got < 0 {
		return 0, fmt.Errorf("poll completion queue: %w", syscall.Errno(-got))
	}
	out := unsafe.Slice(q.out, got)
	for i := range got {
		o := &out[i]
		wcs[i] = WC{
			WRID: uint64(o.wr_id), Status: WCStatus(o.status), Opcode: int(o.opcode),
			VendorErr: uint32(o.vendor_err), ByteLen: uint32(o.byte_len), Imm: uint32(o.imm),
			Flags: int(o.flags), QPNum: uint32(o.qp_num),
		}
	}
	return got, nil
}

// ReqNotify arms the queue: the next completion (or the next solicited
// one) makes its channel readable.
func (q *CQ) ReqNotify(solicitedOnly bool) error {
	s := C.int(0)
	if solicitedOnly {
		s = 1
	}
	if r := C.ferry_req_notify(q.cq, s); r != 0 {
		return fmt.Errorf("arm completion queue: %w", syscall.Errno(r))
	}
	return nil
}

// GetEvent takes one notification from ch, which must be q's channel (a
// channel serving one queue). It fails with EAGAIN when there is none.
// Events are acknowledged in Ack or Close.
func (q *CQ) GetEvent(ch *CompChannel) error {
	var cq *C.struct_ibv_cq
	var ctx unsafe.Pointer
	if r, err := C.ibv_get_cq_event(ch.ch, &cq, &ctx); r != 0 {
		return errnoOr(err, syscall.EIO)
	}
	q.mu.Lock()
	q.unacked++
	q.mu.Unlock()
	return nil
}

// Ack acknowledges the events taken so far.
func (q *CQ) Ack() {
	q.mu.Lock()
	if q.unacked > 0 {
		C.ibv_ack_cq_events(q.cq, C.uint(q.unacked))
		q.unacked = 0
	}
	q.mu.Unlock()
}

// Close acknowledges outstanding events and destroys the queue; queue
// pairs using it must be closed first.
func (q *CQ) Close() error {
	var err error
	q.once.Do(func() {
		q.Ack()
		if r := C.ibv_destroy_cq(q.cq); r != 0 {
			err = fmt.Errorf("destroy completion queue: %w", syscall.Errno(r))
			return
		}
		C.free(unsafe.Pointer(q.wc))
		C.free(unsafe.Pointer(q.out))
		open.cqs.Add(-1)
	})
	return err
}
