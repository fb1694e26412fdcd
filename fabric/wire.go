package fabric

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Frame layout, little endian throughout:
//
//	0  magic    u16  0xFE77
//	2  version  u8   ProtocolVersion
//	3  op       u8   Op, with RespFlag set on responses
//	4  flags    u16  reserved, zero
//	6  pad      u16  reserved, zero
//	8  id       u64  chosen by the initiator, echoed by the response
//	16 bodyLen  u32  exactly the bytes that follow the header
//	20 pad      u32  reserved, zero
//
// A response body starts with status u16, storage ns u64, eBPF ns u64 and
// a message string; the op-specific fields follow. Strings are u16 length
// plus bytes, lists are a count plus elements.
const (
	Magic           = 0xFE77
	ProtocolVersion = 1
	HeaderSize      = 24
	RespFlag        = 0x80

	// MaxArgs is the number of u64 arguments an exec request may carry.
	MaxArgs = 8
	// MaxOut is the number of u64 values an extension returns inline.
	MaxOut = 4
	// MaxName bounds extension and tenant names.
	MaxName = 64
)

// Op is a request opcode.
type Op uint8

const (
	OpHello Op = iota + 1
	OpLoad
	OpUnload
	OpExec
	OpReadBlocks
	OpWriteBlocks
	OpFlush
	OpStats
	opEnd
)

var opNames = [...]string{
	OpHello: "hello", OpLoad: "load", OpUnload: "unload", OpExec: "exec",
	OpReadBlocks: "read", OpWriteBlocks: "write", OpFlush: "flush", OpStats: "stats",
}

func (o Op) String() string {
	if o > 0 && o < opEnd {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Header is the fixed part of every frame.
type Header struct {
	Version uint8
	Op      Op
	Resp    bool
	ID      uint64
	BodyLen uint32
}

var (
	// ErrMalformed is wrapped by every decoding error.
	ErrMalformed = errors.New("malformed frame")
	// ErrVersion is wrapped when the frame's protocol version is not ours.
	ErrVersion = errors.New("unsupported protocol version")
	// ErrUnknownOp is wrapped when the opcode is not known.
	ErrUnknownOp = errors.New("unknown opcode")
)

// DecodeHeader checks the fixed header of frame b, including that the body
// length matches what follows. On ErrVersion and ErrUnknownOp the returned
// header's ID is valid, so that a target can still answer the request.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(b), HeaderSize)
	}
	if m := binary.LittleEndian.Uint16(b[0:]); m != Magic {
		return Header{}, fmt.Errorf("%w: bad magic %#04x", ErrMalformed, m)
	}
	h := Header{
		Version: b[2],
		Op:      Op(b[3] &^ RespFlag),
		Resp:    b[3]&RespFlag != 0,
		ID:      binary.LittleEndian.Uint64(b[8:]),
		BodyLen: binary.LittleEndian.Uint32(b[16:]),
	}
	if binary.LittleEndian.Uint16(b[4:]) != 0 || binary.LittleEndian.Uint16(b[6:]) != 0 ||
		binary.LittleEndian.Uint32(b[20:]) != 0 {
		return h, fmt.Errorf("%w: reserved header bits set", ErrMalformed)
	}
	if uint64(h.BodyLen) != uint64(len(b)-HeaderSize) {
		return h, fmt.Errorf("%w: body length %d, frame holds %d", ErrMalformed, h.BodyLen, len(b)-HeaderSize)
	}
	if h.Version != ProtocolVersion {
		return h, fmt.Errorf("%w: %d (this side speaks %d)", ErrVersion, h.Version, ProtocolVersion)
	}
	if h.Op == 0 || h.Op >= opEnd {
		return h, fmt.Errorf("%w: %d", ErrUnknownOp, uint8(h.Op))
	}
	return h, nil
}

// encoder appends little-endian fields.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string) {
	if len(s) > math.MaxUint16 {
		s = s[len(s)-math.MaxUint16:]
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) region(r RemoteRegion) { e.u64(r.Addr); e.u32(r.Key); e.u32(r.Len) }

// decoder reads fields and remembers the first error; every read checks
// the bytes left before touching them.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int, what string) bool {
	if d.err != nil {
		return false
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: %s needs %d bytes, %d left", ErrMalformed, what, n, len(d.b))
		return false
	}
	return true
}

func (d *decoder) u8(what string) uint8 {
	if !d.need(1, what) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16(what string) uint16 {
	if !d.need(2, what) {
		return 0
	}
	v := binary.LittleEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) u32(what string) uint32 {
	if !d.need(4, what) {
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64(what string) uint64 {
	if !d.need(8, what) {
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str(what string, max int) string {
	n := int(d.u16(what + " length"))
	if d.err == nil && n > max {
		d.err = fmt.Errorf("%w: %s of %d bytes, at most %d", ErrMalformed, what, n, max)
		return ""
	}
	if !d.need(n, what) {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) region(what string) RemoteRegion {
	return RemoteRegion{Addr: d.u64(what), Key: d.u32(what), Len: d.u32(what)}
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

func appendHeader(dst []byte, op Op, resp bool, id uint64) []byte {
	var h [HeaderSize]byte
	binary.LittleEndian.PutUint16(h[0:], Magic)
	h[2] = ProtocolVersion
	h[3] = uint8(op)
	if resp {
		h[3] |= RespFlag
	}
	binary.LittleEndian.PutUint64(h[8:], id)
	return append(dst, h[:]...)
}

func finishFrame(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start+16:], uint32(len(b)-start-HeaderSize))
	return b
}
