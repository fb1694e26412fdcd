package fabric

import (
	"errors"
	"fmt"
)

// Request is the body of a request frame.
type Request interface {
	Op() Op
	encode(e *encoder)
	decode(d *decoder)
}

// ResponseBody is the op-specific tail of a response frame.
type ResponseBody interface {
	Op() Op
	encode(e *encoder)
	decode(d *decoder)
}

// Hello opens a session. It must be the first request on a connection.
type Hello struct {
	Tenant string
	// QueueDepth is how many requests the initiator wants in flight.
	QueueDepth uint16
}

// NamespaceInfo describes one namespace a target serves.
type NamespaceInfo struct {
	ID        uint32
	BlockSize uint32
	Blocks    uint64
}

// HelloReply tells the initiator the target's limits.
type HelloReply struct {
	QueueDepth uint16
	// MaxIOBytes bounds the bytes of one exec, read or write request.
	MaxIOBytes uint32
	// MaxResultBytes bounds an exec result.
	MaxResultBytes uint32
	Namespaces     []NamespaceInfo
}

// Load asks the target to pull an extension's ELF from the initiator's
// region with a one-sided read, check it and load it.
type Load struct {
	Name string
	ELF  RemoteRegion
}

// LoadReply names the loaded extension.
type LoadReply struct {
	Handle  uint32
	Program string
	Insns   uint32
}

// Unload drops a loaded extension.
type Unload struct{ Handle uint32 }

// Exec runs an extension over Blocks blocks of namespace NS from LBA and
// writes its result into Result.
type Exec struct {
	Handle uint32
	NS     uint32
	LBA    uint64
	Blocks uint32
	Args   []uint64
	Result RemoteRegion
}

// ExecReply carries what the extension returned.
type ExecReply struct {
	ResultLen uint32
	// Out holds the extension's scalar outputs (counts, sums).
	Out [MaxOut]uint64
}

// ReadBlocks asks the target to write blocks into Dest.
type ReadBlocks struct {
	NS     uint32
	LBA    uint64
	Blocks uint32
	Dest   RemoteRegion
}

// WriteBlocks asks the target to pull blocks from Src and store them.
// With FUA set the write is durable before the reply.
type WriteBlocks struct {
	NS     uint32
	LBA    uint64
	Blocks uint32
	Src    RemoteRegion
	FUA    bool
}

// IOReply reports the bytes moved by a read or write.
type IOReply struct{ Bytes uint32 }

// Flush makes every acknowledged write to NS durable.
type Flush struct{ NS uint32 }

// Stats asks for the target's counters.
type Stats struct{}

// Counter is one named statistic.
type Counter struct {
	Name  string
	Value uint64
}

// StatsReply lists counters in a stable order.
type StatsReply struct{ Counters []Counter }

// Empty is the body of replies that carry nothing but the common fields.
type Empty struct{ op Op }

func (*Hello) Op() Op       { return OpHello }
func (*HelloReply) Op() Op  { return OpHello }
func (*Load) Op() Op        { return OpLoad }
func (*LoadReply) Op() Op   { return OpLoad }
func (*Unload) Op() Op      { return OpUnload }
func (*Exec) Op() Op        { return OpExec }
func (*ExecReply) Op() Op   { return OpExec }
func (*ReadBlocks) Op() Op  { return OpReadBlocks }
func (*WriteBlocks) Op() Op { return OpWriteBlocks }
func (r *IOReply) Op() Op   { return 0 }
func (*Flush) Op() Op       { return OpFlush }
func (*Stats) Op() Op       { return OpStats }
func (*StatsReply) Op() Op  { return OpStats }
func (e *Empty) Op() Op     { return e.op }

func (m *Hello) encode(e *encoder) { e.str(m.Tenant); e.u16(m.QueueDepth) }
func (m *Hello) decode(d *decoder) {
	m.Tenant = d.str("tenant", MaxName)
	m.QueueDepth = d.u16("queue depth")
}

// maxNamespaces bounds the list a hello reply may carry, so a decoder never
// allocates for a count it has not checked against the bytes present.
const maxNamespaces = 1024

func (m *HelloReply) encode(e *encoder) {
	e.u16(m.QueueDepth)
	e.u32(m.MaxIOBytes)
	e.u32(m.MaxResultBytes)
	e.u16(uint16(len(m.Namespaces)))
	for _, ns := range m.Namespaces {
		e.u32(ns.ID)
		e.u32(ns.BlockSize)
		e.u64(ns.Blocks)
	}
}

func (m *HelloReply) decode(d *decoder) {
	m.QueueDepth = d.u16("queue depth")
	m.MaxIOBytes = d.u32("max io bytes")
	m.MaxResultBytes = d.u32("max result bytes")
	n := int(d.u16("namespace count"))
	if n > maxNamespaces || !d.need(n*16, "namespaces") {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %d namespaces", ErrMalformed, n)
		}
		return
	}
	m.Namespaces = make([]NamespaceInfo, n)
	for i := range m.Namespaces {
		m.Namespaces[i] = NamespaceInfo{ID: d.u32("ns id"), BlockSize: d.u32("block size"), Blocks: d.u64("blocks")}
	}
}

func (m *Load) encode(e *encoder) { e.str(m.Name); e.region(m.ELF) }
func (m *Load) decode(d *decoder) {
	m.Name = d.str("extension name", MaxName)
	m.ELF = d.region("elf region")
}

func (m *LoadReply) encode(e *encoder) { e.u32(m.Handle); e.str(m.Program); e.u32(m.Insns) }
func (m *LoadReply) decode(d *decoder) {
	m.Handle = d.u32("handle")
	m.Program = d.str("program", MaxName)
	m.Insns = d.u32("insns")
}

func (m *Unload) encode(e *encoder) { e.u32(m.Handle) }
func (m *Unload) decode(d *decoder) { m.Handle = d.u32("handle") }

func (m *Exec) encode(e *encoder) {
	e.u32(m.Handle)
	e.u32(m.NS)
	e.u64(m.LBA)
	e.u32(m.Blocks)
	e.u8(uint8(len(m.Args)))
	for _, a := range m.Args {
		e.u64(a)
	}
	e.region(m.Result)
}

func (m *Exec) decode(d *decoder) {
	m.Handle = d.u32("handle")
	m.NS = d.u32("namespace")
	m.LBA = d.u64("lba")
	m.Blocks = d.u32("blocks")
	n := int(d.u8("arg count"))
	if d.err == nil && n > MaxArgs {
		d.err = fmt.Errorf("%w: %d arguments, at most %d", ErrMalformed, n, MaxArgs)
		return
	}
	if n > 0 && d.need(8*n, "args") {
		m.Args = make([]uint64, n)
		for i := range m.Args {
			m.Args[i] = d.u64("arg")
		}
	}
	m.Result = d.region("result region")
}

func (m *ExecReply) encode(e *encoder) {
	e.u32(m.ResultLen)
	for _, v := range m.Out {
		e.u64(v)
	}
}

func (m *ExecReply) decode(d *decoder) {
	m.ResultLen = d.u32("result length")
	for i := range m.Out {
		m.Out[i] = d.u64("out")
	}
}

func (m *ReadBlocks) encode(e *encoder) { e.u32(m.NS); e.u64(m.LBA); e.u32(m.Blocks); e.region(m.Dest) }
func (m *ReadBlocks) decode(d *decoder) {
	m.NS = d.u32("namespace")
	m.LBA = d.u64("lba")
	m.Blocks = d.u32("blocks")
	m.Dest = d.region("destination region")
}

func (m *WriteBlocks) encode(e *encoder) {
	e.u32(m.NS)
	e.u64(m.LBA)
	e.u32(m.Blocks)
	e.region(m.Src)
	var f uint8
	if m.FUA {
		f = 1
	}
	e.u8(f)
}

func (m *WriteBlocks) decode(d *decoder) {
	m.NS = d.u32("namespace")
	m.LBA = d.u64("lba")
	m.Blocks = d.u32("blocks")
	m.Src = d.region("source region")
	f := d.u8("flags")
	if d.err == nil && f&^1 != 0 {
		d.err = fmt.Errorf("%w: unknown write flags %#x", ErrMalformed, f)
	}
	m.FUA = f&1 != 0
}

func (m *IOReply) encode(e *encoder) { e.u32(m.Bytes) }
func (m *IOReply) decode(d *decoder) { m.Bytes = d.u32("bytes") }

func (m *Flush) encode(e *encoder) { e.u32(m.NS) }
func (m *Flush) decode(d *decoder) { m.NS = d.u32("namespace") }

func (*Stats) encode(*encoder) {}
func (*Stats) decode(*decoder) {}

const maxCounters = 1024

func (m *StatsReply) encode(e *encoder) {
	e.u16(uint16(len(m.Counters)))
	for _, c := range m.Counters {
		e.str(c.Name)
		e.u64(c.Value)
	}
}

func (m *StatsReply) decode(d *decoder) {
	n := int(d.u16("counter count"))
	// Each counter takes at least 10 bytes; refuse counts the body cannot hold.
	if n > maxCounters || !d.need(n*10, "counters") {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %d counters", ErrMalformed, n)
		}
		return
	}
	m.Counters = make([]Counter, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		m.Counters = append(m.Counters, Counter{Name: d.str("counter name", MaxName), Value: d.u64("counter")})
	}
}

func (*Empty) encode(*encoder) {}
func (*Empty) decode(*decoder) {}

// NewRequest returns an empty request body for op, or nil.
func NewRequest(op Op) Request {
	switch op {
	case OpHello:
		return &Hello{}
	case OpLoad:
		return &Load{}
	case OpUnload:
		return &Unload{}
	case OpExec:
		return &Exec{}
	case OpReadBlocks:
		return &ReadBlocks{}
	case OpWriteBlocks:
		return &WriteBlocks{}
	case OpFlush:
		return &Flush{}
	case OpStats:
		return &Stats{}
	}
	return nil
}

// NewResponseBody returns an empty response body for op, or nil.
func NewResponseBody(op Op) ResponseBody {
	switch op {
	case OpHello:
		return &HelloReply{}
	case OpLoad:
		return &LoadReply{}
	case OpExec:
		return &ExecReply{}
	case OpReadBlocks, OpWriteBlocks:
		return &IOReply{}
	case OpStats:
		return &StatsReply{}
	case OpUnload, OpFlush:
		return &Empty{op: op}
	}
	return nil
}

// AppendRequest appends a request frame with the given id to dst.
func AppendRequest(dst []byte, id uint64, req Request) []byte {
	start := len(dst)
	dst = appendHeader(dst, req.Op(), false, id)
	e := encoder{b: dst}
	req.encode(&e)
	return finishFrame(e.b, start)
}

// DecodeRequest decodes a whole request frame. The header is returned even
// when the body fails, so that a target can answer with the id.
func DecodeRequest(b []byte) (Header, Request, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return h, nil, err
	}
	if h.Resp {
		return h, nil, fmt.Errorf("%w: response frame where a request was expected", ErrMalformed)
	}
	req := NewRequest(h.Op)
	d := decoder{b: b[HeaderSize:]}
	req.decode(&d)
	if err := d.finish(); err != nil {
		return h, nil, fmt.Errorf("decode %s request: %w", h.Op, err)
	}
	return h, req, nil
}

// Response is a decoded response frame.
type Response struct {
	Op        Op
	ID        uint64
	Status    Status
	Message   string
	StorageNs uint64
	BpfNs     uint64
	// Body is nil when Status is not StatusOK.
	Body ResponseBody
}

// Err returns the response's failure as a *StatusError, or nil.
func (r *Response) Err() error {
	if r.Status == StatusOK {
		return nil
	}
	return &StatusError{Op: r.Op, Status: r.Status, Message: r.Message}
}

// AppendResponse appends a response frame. body is ignored unless status
// is StatusOK. maxLen bounds the frame: a message that would not fit is cut
// from its start, keeping the end, where a verifier log says what failed.
func AppendResponse(dst []byte, maxLen int, r *Response) []byte {
	start := len(dst)
	dst = appendHeader(dst, r.Op, true, r.ID)
	e := encoder{b: dst}
	e.u16(uint16(r.Status))
	e.u64(r.StorageNs)
	e.u64(r.BpfNs)

	msg := r.Message
	var tail encoder
	if r.Status == StatusOK && r.Body != nil {
		r.Body.encode(&tail)
	}
	if room := maxLen - (len(e.b) - start) - 2 - len(tail.b); maxLen > 0 && len(msg) > room {
		const cut = "[...] "
		if room > len(cut) {
			msg = cut + msg[len(msg)-(room-len(cut)):]
		} else if room > 0 {
			msg = msg[len(msg)-room:]
		} else {
			msg = ""
		}
	}
	e.str(msg)
	e.b = append(e.b, tail.b...)
	return finishFrame(e.b, start)
}

// DecodeResponse decodes a whole response frame.
func DecodeResponse(b []byte) (*Response, error) {
	h, err := DecodeHeader(b)
	// A target answers an opcode it does not know with that opcode and a
	// failure status, so an unknown op is fine in a failed response.
	unknown := errors.Is(err, ErrUnknownOp) && h.Resp
	if err != nil && !unknown {
		return nil, err
	}
	if !h.Resp {
		return nil, fmt.Errorf("%w: request frame where a response was expected", ErrMalformed)
	}
	d := decoder{b: b[HeaderSize:]}
	r := &Response{Op: h.Op, ID: h.ID}
	r.Status = Status(d.u16("status"))
	r.StorageNs = d.u64("storage ns")
	r.BpfNs = d.u64("bpf ns")
	r.Message = d.str("message", 1<<16)
	if d.err == nil && r.Status == StatusOK && unknown {
		d.err = fmt.Errorf("%w: successful response to unknown opcode %d", ErrMalformed, uint8(h.Op))
	}
	if d.err == nil && r.Status == StatusOK {
		r.Body = NewResponseBody(h.Op)
		r.Body.decode(&d)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decode %s response: %w", h.Op, err)
	}
	return r, nil
}
