//go:build cgo

package cgo

/*
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <rdma/rdma_cma.h>

static int ferry_set_nonblock_cm(int fd) {
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// ferry_sockaddr fills ss from an address of 4 or 16 bytes and a port.
static void ferry_sockaddr(struct sockaddr_storage *ss, const uint8_t *ip, int iplen,
		uint16_t port) {
	memset(ss, 0, sizeof *ss);
	if (iplen == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		memcpy(&s->sin_addr, ip, 4);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		memcpy(&s->sin6_addr, ip, 16);
	}
}

static int ferry_bind(struct rdma_cm_id *id, const uint8_t *ip, int iplen, uint16_t port) {
	struct sockaddr_storage ss;
	ferry_sockaddr(&ss, ip, iplen, port);
	return rdma_bind_addr(id, (struct sockaddr *)&ss);
}

static int ferry_resolve_addr(struct rdma_cm_id *id, const uint8_t *ip, int iplen,
		uint16_t port, int timeout_ms) {
	struct sockaddr_storage ss;
	ferry_sockaddr(&ss, ip, iplen, port);
	return rdma_resolve_addr(id, NULL, (struct sockaddr *)&ss, timeout_ms);
}

// ferry_addr copies the address of sa into ip (16 bytes) and returns its
// length (4 or 16), or 0 for another family.
static int ferry_addr(struct sockaddr *sa, uint8_t *ip, uint16_t *port) {
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)sa;
		memcpy(ip, &s->sin_addr, 4);
		*port = ntohs(s->sin_port);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)sa;
		memcpy(ip, &s->sin6_addr, 16);
		*port = ntohs(s->sin6_port);
		return 16;
	}
	return 0;
}

static int ferry_local_addr(struct rdma_cm_id *id, uint8_t *ip, uint16_t *port) {
	return ferry_addr(rdma_get_local_addr(id), ip, port);
}

static int ferry_peer_addr(struct rdma_cm_id *id, uint8_t *ip, uint16_t *port) {
	return ferry_addr(rdma_get_peer_addr(id), ip, port);
}

static int ferry_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *scq,
		struct ibv_cq *rcq, int send_wr, int recv_wr, int send_sge, int recv_sge, int inl) {
	struct ibv_qp_init_attr a;
	memset(&a, 0, sizeof a);
	a.send_cq = scq;
	a.recv_cq = rcq;
	a.qp_type = IBV_QPT_RC;
	a.cap.max_send_wr = send_wr;
	a.cap.max_recv_wr = recv_wr;
	a.cap.max_send_sge = send_sge;
	a.cap.max_recv_sge = recv_sge;
	a.cap.max_inline_data = inl;
	return rdma_create_qp(id, pd, &a);
}

static void ferry_conn_param(struct rdma_conn_param *p, const void *priv, uint8_t len,
		uint8_t rr, uint8_t id, uint8_t retry, uint8_t rnr) {
	memset(p, 0, sizeof *p);
	p->private_data = priv;
	p->private_data_len = len;
	p->responder_resources = rr;
	p->initiator_depth = id;
	p->retry_count = retry;
	p->rnr_retry_count = rnr;
}

static int ferry_connect(struct rdma_cm_id *id, const void *priv, uint8_t len,
		uint8_t rr, uint8_t idp, uint8_t retry, uint8_t rnr) {
	struct rdma_conn_param p;
	ferry_conn_param(&p, priv, len, rr, idp, retry, rnr);
	return rdma_connect(id, &p);
}

static int ferry_accept(struct rdma_cm_id *id, const void *priv, uint8_t len,
		uint8_t rr, uint8_t idp, uint8_t retry, uint8_t rnr) {
	struct rdma_conn_param p;
	ferry_conn_param(&p, priv, len, rr, idp, retry, rnr);
	return rdma_accept(id, &p);
}

static const void *ferry_event_priv(struct rdma_cm_event *e, int *len) {
	*len = e->param.conn.private_data_len;
	return e->param.conn.private_data;
}

static int ferry_post_send(struct ibv_qp *qp, uint64_t wr_id, int opcode, int flags,
		uint64_t laddr, uint32_t len, uint32_t lkey,
		uint64_t raddr, uint32_t rkey, uint32_t imm) {
	struct ibv_sge sge = { .addr = laddr, .length = len, .lkey = lkey };
	struct ibv_send_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = wr_id;
	wr.opcode = opcode;
	wr.send_flags = flags;
	if (len > 0) {
		wr.sg_list = &sge;
		wr.num_sge = 1;
	}
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	wr.imm_data = htonl(imm);
	return ibv_post_send(qp, &wr, &bad);
}

static int ferry_post_recv(struct ibv_qp *qp, uint64_t wr_id,
		uint64_t laddr, uint32_t len, uint32_t lkey) {
	struct ibv_sge sge = { .addr = laddr, .length = len, .lkey = lkey };
	struct ibv_recv_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = wr_id;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	return ibv_post_recv(qp, &wr, &bad);
}

static int ferry_qp_to_error(struct ibv_qp *qp) {
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_ERR;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE);
}

static struct ibv_qp *ferry_id_qp(struct rdma_cm_id *id) { return id->qp; }
static struct ibv_context *ferry_id_verbs(struct rdma_cm_id *id) { return id->verbs; }
static uint32_t ferry_qp_num(struct ibv_qp *qp) { return qp->qp_num; }
*/
import "C"

import (
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// EventChannel is an rdma_cm event channel with a non-blocking descriptor.
type EventChannel struct {
	ch   *C.struct_rdma_event_channel
	once sync.Once
}

// CreateEventChannel opens an event channel. It fails with an error
// wrapping ErrNoDevice when the kernel has no rdma_cm.
func CreateEventChannel() (*EventChannel, error) {
	ch, err := C.rdma_create_event_channel()
	if ch == nil {
		err = errnoOr(err, syscall.ENODEV)
		if err == syscall.ENODEV || err == syscall.ENOENT {
			return nil, fmt.Errorf("create event channel: %w: %w", ErrNoDevice, err)
		}
		return nil, fmt.Errorf("create event channel: %w", err)
	}
	if r, err := C.ferry_set_nonblock_cm(ch.fd); r != 0 {
		C.rdma_destroy_event_channel(ch)
		return nil, fmt.Errorf("create event channel: set non-blocking: %w", err)
	}
	open.eventChannels.Add(1)
	return &EventChannel{ch: ch}, nil
}

// Fd is the channel's descriptor, readable when an event waits.
func (c *EventChannel) Fd() int { return int(c.ch.fd) }

// GetEvent takes the next event, copies what it carries and acknowledges
// it. It fails with EAGAIN when no event waits.
func (c *EventChannel) GetEvent() (CMEvent, error) {
	var ev *C.struct_rdma_cm_event
	if r, err := C.rdma_get_cm_event(c.ch, &ev); r != 0 {
		return CMEvent{}, errnoOr(err, syscall.EIO)
	}
	e := CMEvent{Type: CMEventType(ev.event), Status: int(ev.status)}
	var n C.int
	if p := C.ferry_event_priv(ev, &n); p != nil && n > 0 {
		e.PrivateData = C.GoBytes(p, n)
	}
	if e.Type == EventConnectRequest {
		e.ID = &CMID{id: ev.id}
		open.ids.Add(1)
	}
	C.rdma_ack_cm_event(ev)
	return e, nil
}

// Close destroys the channel; its identifiers must be closed first.
func (c *EventChannel) Close() error {
	c.once.Do(func() {
		C.rdma_destroy_event_channel(c.ch)
		open.eventChannels.Add(-1)
	})
	return nil
}

// CMID is an rdma_cm identifier (RDMA_PS_TCP: reliable connected) and the
// queue pair created on it.
type CMID struct {
	id     *C.struct_rdma_cm_id
	hasQP  bool
	once   sync.Once
	qpOnce sync.Once
}

// CreateID creates an identifier reporting to ch.
func CreateID(ch *EventChannel) (*CMID, error) {
	var id *C.struct_rdma_cm_id
	if r, err := C.rdma_create_id(ch.ch, &id, nil, C.RDMA_PS_TCP); r != 0 {
		return nil, fmt.Errorf("create rdma_cm id: %w", errnoOr(err, syscall.EIO))
	}
	open.ids.Add(1)
	return &CMID{id: id}, nil
}

func ipBytes(a netip.Addr) []byte {
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// Bind binds the identifier to a local address (port 0 picks one).
func (i *CMID) Bind(ap netip.AddrPort) error {
	ip := ipBytes(ap.Addr())
	r, err := C.ferry_bind(i.id, (*C.uint8_t)(&ip[0]), C.int(len(ip)), C.uint16_t(ap.Port()))
	if r != 0 {
		return fmt.Errorf("bind %s: %w", ap, errnoOr(err, syscall.EINVAL))
	}
	return nil
}

// Listen starts listening for connect requests.
func (i *CMID) Listen(backlog int) error {
	if r, err := C.rdma_listen(i.id, C.int(backlog)); r != 0 {
		return fmt.Errorf("listen: %w", errnoOr(err, syscall.EINVAL))
	}
	return nil
}

// ResolveAddr starts resolving dst to a device and port; the outcome is
// an address resolved or address error event.
func (i *CMID) ResolveAddr(dst netip.AddrPort, timeout time.Duration) error {
	ip := ipBytes(dst.Addr())
	r, err := C.ferry_resolve_addr(i.id, (*C.uint8_t)(&ip[0]), C.int(len(ip)),
		C.uint16_t(dst.Port()), C.int(timeout.Milliseconds()))
	if r != 0 {
		return fmt.Errorf("resolve address %s: %w", dst, errnoOr(err, syscall.EINVAL))
	}
	return nil
}

// ResolveRoute starts resolving the route; the outcome is a route
// resolved or route error event.
func (i *CMID) ResolveRoute(timeout time.Duration) error {
	if r, err := C.rdma_resolve_route(i.id, C.int(timeout.Milliseconds())); r != 0 {
		return fmt.Errorf("resolve route: %w", errnoOr(err, syscall.EINVAL))
	}
	return nil
}

// OnDevice reports whether the identifier is bound to d (after address
// resolution, or for a connect request's identifier).
func (i *CMID) OnDevice(d *Device) bool { return C.ferry_id_verbs(i.id) == d.ctx }

// DeviceName names the device the identifier is bound to, or "".
func (i *CMID) DeviceName() string {
	v := C.ferry_id_verbs(i.id)
	if v == nil {
		return ""
	}
	return C.GoString(C.ibv_get_device_name(v.device))
}

func addrPort(n C.int, ip []byte, port C.uint16_t) netip.AddrPort {
	switch n {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[:4])), uint16(port))
	case 16:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[:16])).Unmap(), uint16(port))
	}
	return netip.AddrPort{}
}

// LocalAddr is the bound local address.
func (i *CMID) LocalAddr() netip.AddrPort {
	var ip [16]byte
	var port C.uint16_t
	n := C.ferry_local_addr(i.id, (*C.uint8_t)(&ip[0]), &port)
	return addrPort(n, ip[:], port)
}

// PeerAddr is the remote address.
func (i *CMID) PeerAddr() netip.AddrPort {
	var ip [16]byte
	var port C.uint16_t
	n := C.ferry_peer_addr(i.id, (*C.uint8_t)(&ip[0]), &port)
	return addrPort(n, ip[:], port)
}

// CreateQP creates the identifier's RC queue pair on pd with the given
// completion queues. rdma_cm moves it through its states on connect and
// accept.
func (i *CMID) CreateQP(pd *PD, send, recv *CQ, caps QPCaps) error {
	r, err := C.ferry_create_qp(i.id, pd.pd, send.cq, recv.cq, C.int(caps.MaxSendWR),
		C.int(caps.MaxRecvWR), C.int(caps.MaxSendSGE), C.int(caps.MaxRecvSGE),
		C.int(caps.MaxInlineData))
	if r != 0 {
		return fmt.Errorf("create queue pair: %w", errnoOr(err, syscall.EINVAL))
	}
	i.hasQP = true
	open.qps.Add(1)
	return nil
}

// QPNum is the queue pair number, or 0 without one.
func (i *CMID) QPNum() uint32 {
	if !i.hasQP {
		return 0
	}
	return uint32(C.ferry_qp_num(C.ferry_id_qp(i.id)))
}

func privPtr(b []byte) (unsafe.Pointer, C.uint8_t, error) {
	if len(b) > 255 {
		return nil, 0, fmt.Errorf("private data of %d bytes: %w", len(b), syscall.EINVAL)
	}
	if len(b) == 0 {
		return nil, 0, nil
	}
	return unsafe.Pointer(&b[0]), C.uint8_t(len(b)), nil
}

// Connect sends a connect request; the outcome is an established,
// rejected, unreachable or connect error event.
func (i *CMID) Connect(p ConnParam) error {
	ptr, n, err := privPtr(p.PrivateData)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	r, err := C.ferry_connect(i.id, ptr, n, C.uint8_t(p.ResponderResources),
		C.uint8_t(p.InitiatorDepth), C.uint8_t(p.RetryCount), C.uint8_t(p.RNRRetryCount))
	if r != 0 {
		return fmt.Errorf("connect: %w", errnoOr(err, syscall.EIO))
	}
	return nil
}

// Accept accepts a connect request on its identifier; an established
// event follows.
func (i *CMID) Accept(p ConnParam) error {
	ptr, n, err := privPtr(p.PrivateData)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	r, err := C.ferry_accept(i.id, ptr, n, C.uint8_t(p.ResponderResources),
		C.uint8_t(p.InitiatorDepth), C.uint8_t(p.RetryCount), C.uint8_t(p.RNRRetryCount))
	if r != 0 {
		return fmt.Errorf("accept: %w", errnoOr(err, syscall.EIO))
	}
	return nil
}

// Reject refuses a connect request, with private data for the peer.
func (i *CMID) Reject(priv []byte) error {
	ptr, n, err := privPtr(priv)
	if err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	if r, err := C.rdma_reject(i.id, ptr, n); r != 0 {
		return fmt.Errorf("reject: %w", errnoOr(err, syscall.EIO))
	}
	return nil
}

// Disconnect tears the connection down and moves the queue pair to the
// error state, which flushes its outstanding work requests.
func (i *CMID) Disconnect() error {
	if r, err := C.rdma_disconnect(i.id); r != 0 {
		return fmt.Errorf("disconnect: %w", errnoOr(err, syscall.EIO))
	}
	return nil
}

// Migrate moves the identifier to another event channel. Every event of
// the identifier must have been acknowledged (GetEvent does).
func (i *CMID) Migrate(ch *EventChannel) error {
	if r, err := C.rdma_migrate_id(i.id, ch.ch); r != 0 {
		return fmt.Errorf("migrate rdma_cm id: %w", errnoOr(err, syscall.EIO))
	}
	return nil
}

// QPToError moves the queue pair to the error state: outstanding work
// requests complete with WCFlushErr.
func (i *CMID) QPToError() error {
	if !i.hasQP {
		return nil
	}
	if r := C.ferry_qp_to_error(C.ferry_id_qp(i.id)); r != 0 {
		return fmt.Errorf("move queue pair to error: %w", syscall.Errno(r))
	}
	return nil
}

// PostSend posts one work request of opcode (WR*) with flags (Send*): n
// bytes at laddr (lkey) as its only gather entry, and for RDMA opcodes
// the remote address and key.
func (i *CMID) PostSend(wrID uint64, opcode, flags int, laddr uintptr, n uint32, lkey uint32,
	raddr uint64, rkey uint32, imm uint32) error {
	r := C.ferry_post_send(C.ferry_id_qp(i.id), C.uint64_t(wrID), C.int(opcode), C.int(flags),
		C.uint64_t(laddr), C.uint32_t(n), C.uint32_t(lkey), C.uint64_t(raddr),
		C.uint32_t(rkey), C.uint32_t(imm))
	if r != 0 {
		return fmt.Errorf("post send: %w", syscall.Errno(r))
	}
	return nil
}

// PostRecv posts one receive of up to n bytes at laddr (lkey).
func (i *CMID) PostRecv(wrID uint64, laddr uintptr, n uint32, lkey uint32) error {
	r := C.ferry_post_recv(C.ferry_id_qp(i.id), C.uint64_t(wrID), C.uint64_t(laddr),
		C.uint32_t(n), C.uint32_t(lkey))
	if r != 0 {
		return fmt.Errorf("post recv: %w", syscall.Errno(r))
	}
	return nil
}

// DestroyQP destroys the identifier's queue pair.
func (i *CMID) DestroyQP() {
	if !i.hasQP {
		return
	}
	i.qpOnce.Do(func() {
		C.rdma_destroy_qp(i.id)
		open.qps.Add(-1)
	})
}

// Close destroys the queue pair, if any, and the identifier. Every event
// reported for it must have been acknowledged.
func (i *CMID) Close() error {
	var err error
	i.once.Do(func() {
		i.DestroyQP()
		if r, e := C.rdma_destroy_id(i.id); r != 0 {
			err = fmt.Errorf("destroy rdma_cm id: %w", errnoOr(e, syscall.EIO))
			return
		}
		open.ids.Add(-1)
	})
	return err
}
