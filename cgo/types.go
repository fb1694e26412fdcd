package cgo

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/ferry-fabric/ferry/fabric"
)

// errNoCgo is returned by every constructor of a build without cgo.
var errNoCgo = fmt.Errorf("rdma verbs need a cgo build: %w", fabric.ErrNotSupported)

// ErrNoDevice is wrapped when the machine has no RDMA device (no kernel
// support, no hardware, no rxe link). It wraps fabric.ErrNotSupported.
var ErrNoDevice = fmt.Errorf("no RDMA device: %w", fabric.ErrNotSupported)

// Access flags of a memory region (enum ibv_access_flags).
const (
	AccessLocalWrite  = 1
	AccessRemoteWrite = 2
	AccessRemoteRead  = 4
)

// Work request opcodes (enum ibv_wr_opcode).
const (
	WRRDMAWrite        = 0
	WRRDMAWriteWithImm = 1
	WRSend             = 2
	WRSendWithImm      = 3
	WRRDMARead         = 4
)

// Send flags (enum ibv_send_flags).
const (
	SendFence    = 1
	SendSignaled = 2
	SendInline   = 8
)

// Completion opcodes (enum ibv_wc_opcode).
const (
	WCSend        = 0
	WCRDMAWrite   = 1
	WCRDMARead    = 2
	WCRecv        = 128
	WCRecvRDMAImm = 129
	WCFlagWithImm = 2 // wc_flags: IBV_WC_WITH_IMM
)

// WCStatus is the status of a work completion (enum ibv_wc_status).
type WCStatus int

const (
	WCSuccess        WCStatus = 0
	WCLocLenErr      WCStatus = 1
	WCLocQPOpErr     WCStatus = 2
	WCLocProtErr     WCStatus = 4
	WCFlushErr       WCStatus = 5
	WCLocAccessErr   WCStatus = 8
	WCRemInvReqErr   WCStatus = 9
	WCRemAccessErr   WCStatus = 10
	WCRemOpErr       WCStatus = 11
	WCRetryExcErr    WCStatus = 12
	WCRNRRetryExcErr WCStatus = 13
)

var wcStatusNames = map[WCStatus]string{
	0: "success", 1: "local length error", 2: "local QP operation error",
	3: "local EE context operation error", 4: "local protection error",
	5: "work request flushed", 6: "memory window bind error", 7: "bad response",
	8: "local access error", 9: "remote invalid request", 10: "remote access error",
	11: "remote operation error", 12: "transport retry counter exceeded",
	13: "RNR retry counter exceeded", 14: "local RDD violation",
	15: "remote invalid RD request", 16: "remote aborted", 17: "invalid EE context number",
	18: "invalid EE context state", 19: "fatal error", 20: "response timeout",
	21: "general error",
}

func (s WCStatus) String() string {
	if n, ok := wcStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// WC is one work completion (struct ibv_wc, the fields Ferry uses).
type WC struct {
	WRID      uint64
	Status    WCStatus
	Opcode    int
	VendorErr uint32
	ByteLen   uint32
	Imm       uint32 // host order; valid when Flags has WCFlagWithImm
	Flags     int
	QPNum     uint32
}

// DeviceAttr holds the limits of a device that Ferry sizes queues by.
type DeviceAttr struct {
	MaxMRSize       uint64
	MaxQPWR         int
	MaxSGE          int
	MaxCQE          int
	MaxMR           int
	MaxQPRdAtom     int // incoming RDMA reads a QP may have outstanding
	MaxQPInitRdAtom int // outgoing RDMA reads a QP may have outstanding
}

// PortAttr is the state of one port of a device.
type PortAttr struct {
	State     int // 4 is IBV_PORT_ACTIVE
	ActiveMTU int // enum ibv_mtu: 1 is 256 bytes ... 5 is 4096
	MaxMsgSz  uint32
	LinkLayer int // 1 InfiniBand, 2 Ethernet (RoCE)
}

// QPCaps sizes a queue pair.
type QPCaps struct {
	MaxSendWR     int
	MaxRecvWR     int
	MaxSendSGE    int
	MaxRecvSGE    int
	MaxInlineData int
}

// ConnParam is struct rdma_conn_param for connect and accept.
type ConnParam struct {
	PrivateData        []byte
	ResponderResources uint8
	InitiatorDepth     uint8
	RetryCount         uint8
	RNRRetryCount      uint8
}

// CMEventType is enum rdma_cm_event_type.
type CMEventType int

const (
	EventAddrResolved CMEventType = iota
	EventAddrError
	EventRouteResolved
	EventRouteError
	EventConnectRequest
	EventConnectResponse
	EventConnectError
	EventUnreachable
	EventRejected
	EventEstablished
	EventDisconnected
	EventDeviceRemoval
	EventMulticastJoin
	EventMulticastError
	EventAddrChange
	EventTimewaitExit
)

var eventNames = [...]string{
	"addr resolved", "addr error", "route resolved", "route error", "connect request",
	"connect response", "connect error", "unreachable", "rejected", "established",
	"disconnected", "device removal", "multicast join", "multicast error",
	"addr change", "timewait exit",
}

func (e CMEventType) String() string {
	if e >= 0 && int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", int(e))
}

// CMEvent is a received rdma_cm event, already acknowledged: its private
// data is a copy.
type CMEvent struct {
	Type CMEventType
	// Status is the event's status: for a rejection the reason, else
	// usually a negative errno.
	Status int
	// ID is the new identifier of a connect request, which the caller
	// must accept, or reject, and close. Nil for other events.
	ID          *CMID
	PrivateData []byte
}

// Counts is the number of open objects of each kind.
type Counts struct {
	DeviceLists, PDs, MRs, CompChannels, CQs, EventChannels, IDs, QPs int64
}

func (c Counts) IsZero() bool { return c == Counts{} }

func (c Counts) String() string {
	var b strings.Builder
	for _, f := range []struct {
		n string
		v int64
	}{{"device lists", c.DeviceLists}, {"pds", c.PDs}, {"mrs", c.MRs},
		{"comp channels", c.CompChannels}, {"cqs", c.CQs},
		{"event channels", c.EventChannels}, {"ids", c.IDs}, {"qps", c.QPs}} {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", f.n, f.v)
	}
	return b.String()
}

var open struct {
	deviceLists, pds, mrs, compChannels, cqs, eventChannels, ids, qps atomic.Int64
}

// Open reports the objects now open through this package.
func Open() Counts {
	return Counts{
		DeviceLists: open.deviceLists.Load(), PDs: open.pds.Load(), MRs: open.mrs.Load(),
		CompChannels: open.compChannels.Load(), CQs: open.cqs.Load(),
		EventChannels: open.eventChannels.Load(), IDs: open.ids.Load(), QPs: open.qps.Load(),
	}
}
