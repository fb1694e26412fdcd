package fabric

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ConnHello is what the two ends of a provider connection tell each other
// at set-up: the receive buffers each posts (its peer's initial credits)
// and the largest message it accepts. Providers send it in their own
// framing (the TCP stream, rdma_cm private data), 16 bytes little endian:
//
//	0  magic       u32  the provider's
//	4  version     u16  the provider's
//	6  reserved    u16  zero
//	8  recvDepth   u32  1..MaxRecvDepth
//	12 maxMessage  u32  MinMaxMessage..MaxMaxMessage
type ConnHello struct {
	RecvDepth  uint32
	MaxMessage uint32
}

// ConnHelloSize is the encoded size of a ConnHello.
const ConnHelloSize = 16

// ErrHandshake is wrapped by connection set-up errors caused by what the
// peer sent.
var ErrHandshake = errors.New("bad handshake")

// HelloFormat is one provider's hello: its magic and version, and the
// bounds on what a peer may ask it to allocate.
type HelloFormat struct {
	Magic         uint32
	Version       uint16
	MaxRecvDepth  uint32
	MaxMaxMessage uint32
}

// Put encodes h into b, which must hold ConnHelloSize bytes.
func (f HelloFormat) Put(b []byte, h ConnHello) {
	_ = b[ConnHelloSize-1]
	binary.LittleEndian.PutUint32(b[0:], f.Magic)
	binary.LittleEndian.PutUint16(b[4:], f.Version)
	binary.LittleEndian.PutUint16(b[6:], 0)
	binary.LittleEndian.PutUint32(b[8:], h.RecvDepth)
	binary.LittleEndian.PutUint32(b[12:], h.MaxMessage)
}

// Decode reads a hello from the start of b (bytes past ConnHelloSize are
// ignored: rdma_cm pads private data) and checks it against f.
func (f HelloFormat) Decode(b []byte) (ConnHello, error) {
	if len(b) < ConnHelloSize {
		return ConnHello{}, fmt.Errorf("%w: %d bytes, need %d", ErrHandshake, len(b), ConnHelloSize)
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != f.Magic {
		return ConnHello{}, fmt.Errorf("%w: magic %#08x", ErrHandshake, m)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != f.Version {
		return ConnHello{}, fmt.Errorf("%w: version %d, this side speaks %d", ErrHandshake, v, f.Version)
	}
	if binary.LittleEndian.Uint16(b[6:]) != 0 {
		return ConnHello{}, fmt.Errorf("%w: reserved bits set", ErrHandshake)
	}
	h := ConnHello{
		RecvDepth:  binary.LittleEndian.Uint32(b[8:]),
		MaxMessage: binary.LittleEndian.Uint32(b[12:]),
	}
	if h.RecvDepth == 0 || h.RecvDepth > f.MaxRecvDepth {
		return ConnHello{}, fmt.Errorf("%w: receive depth %d outside [1, %d]",
			ErrHandshake, h.RecvDepth, f.MaxRecvDepth)
	}
	if h.MaxMessage < MinMaxMessage || h.MaxMessage > f.MaxMaxMessage {
		return ConnHello{}, fmt.Errorf("%w: max message %d outside [%d, %d]",
			ErrHandshake, h.MaxMessage, MinMaxMessage, f.MaxMaxMessage)
	}
	return h, nil
}
