package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ferry-fabric/ferry/fabric"
)

// frameType is the first byte of every transport frame.
type frameType uint8

const (
	frameSend frameType = iota + 1
	frameWrite
	frameReadReq
	frameReadResp
	frameCredit
	frameEnd
)

var frameNames = [...]string{
	frameSend: "send", frameWrite: "write", frameReadReq: "read-req",
	frameReadResp: "read-resp", frameCredit: "credit",
}

func (t frameType) String() string {
	if t > 0 && t < frameEnd {
		return frameNames[t]
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// headerSize is the fixed size of a frame header; the layout is in doc.go.
const headerSize = 32

// header is a decoded frame header. Length is the payload that follows,
// except for a read request, which has no payload and asks for Length
// bytes.
type header struct {
	Type    frameType
	Credits uint32
	Length  uint32
	Key     uint32
	Addr    uint64
	ID      uint64
}

// ErrProtocol is wrapped by the error of a connection closed because the
// peer broke the transport protocol: a malformed frame, a send without a
// credit, an access to memory it may not touch.
var ErrProtocol = errors.New("protocol violation")

// put encodes h into b, which must hold headerSize bytes.
func (h *header) put(b []byte) {
	_ = b[headerSize-1]
	b[0] = uint8(h.Type)
	b[1] = 0
	binary.LittleEndian.PutUint16(b[2:], 0)
	binary.LittleEndian.PutUint32(b[4:], h.Credits)
	binary.LittleEndian.PutUint32(b[8:], h.Length)
	binary.LittleEndian.PutUint32(b[12:], h.Key)
	binary.LittleEndian.PutUint64(b[16:], h.Addr)
	binary.LittleEndian.PutUint64(b[24:], h.ID)
}

// decodeHeader checks everything about a header that does not depend on
// connection state: the type is known, reserved bits are zero, and fields
// a type does not use are zero. Lengths are checked by the caller against
// MaxMessage, the region, or the pending read.
func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("%w: header of %d bytes, need %d",
			ErrProtocol, len(b), headerSize)
	}
	h := header{
		Type:    frameType(b[0]),
		Credits: binary.LittleEndian.Uint32(b[4:]),
		Length:  binary.LittleEndian.Uint32(b[8:]),
		Key:     binary.LittleEndian.Uint32(b[12:]),
		Addr:    binary.LittleEndian.Uint64(b[16:]),
		ID:      binary.LittleEndian.Uint64(b[24:]),
	}
	if h.Type == 0 || h.Type >= frameEnd {
		return h, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, b[0])
	}
	if b[1] != 0 || binary.LittleEndian.Uint16(b[2:]) != 0 {
		return h, fmt.Errorf("%w: reserved bits set in %s frame", ErrProtocol, h.Type)
	}

	unused := false
	switch h.Type {
	case frameSend:
		unused = h.Key != 0 || h.Addr != 0 || h.ID != 0
	case frameWrite:
		unused = h.ID != 0
	case frameReadReq:
	case frameReadResp:
		unused = h.Key != 0 || h.Addr != 0
	case frameCredit:
		unused = h.Key != 0 || h.Addr != 0 || h.ID != 0 || h.Length != 0
	}
	if unused {
		return h, fmt.Errorf("%w: unused fields set in %s frame", ErrProtocol, h.Type)
	}
	return h, nil
}

// The handshake: each side sends a fabric.ConnHello with this provider's
// magic and bounds on connecting, then reads the peer's.
const (
	helloSize    = fabric.ConnHelloSize
	helloMagic   = 0x46525954 // "TYRF" on the wire: Ferry TCP
	helloVersion = 1

	// maxRecvDepth and maxMaxMessage bound what a peer may ask this side
	// to allocate.
	maxRecvDepth  = 1 << 16
	maxMaxMessage = 16 << 20
)

// hello is this provider's fabric.ConnHello.
type hello fabric.ConnHello

var helloFormat = fabric.HelloFormat{Magic: helloMagic, Version: helloVersion,
	MaxRecvDepth: maxRecvDepth, MaxMaxMessage: maxMaxMessage}

func (h hello) put(b []byte) { helloFormat.Put(b, fabric.ConnHello(h)) }

// ErrHandshake is wrapped by connection set-up errors caused by what the
// peer sent; it is fabric.ErrHandshake.
var ErrHandshake = fabric.ErrHandshake

func decodeHello(b []byte) (hello, error) {
	h, err := helloFormat.Decode(b)
	return hello(h), err
}
