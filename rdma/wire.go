package rdma

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ferry-fabric/ferry/fabric"
)

// ErrProtocol is wrapped by the error of a connection closed because the
// peer broke the transport protocol: a malformed header, a message beyond
// its credits, credits it was never owed.
var ErrProtocol = errors.New("protocol violation")

// ErrHandshake is wrapped by connection set-up errors caused by what the
// peer sent in its rdma_cm private data; it is fabric.ErrHandshake.
var ErrHandshake = fabric.ErrHandshake

// The hello travels as rdma_cm private data, in the connect request and
// in the accept; the layout is in doc.go.
const (
	helloSize    = fabric.ConnHelloSize
	helloMagic   = 0x4d445246 // "FRDM" on the wire
	helloVersion = 1

	// maxRecvDepth and maxMaxMessage bound what a peer may ask this side
	// to allocate.
	maxRecvDepth  = 1 << 14
	maxMaxMessage = 16 << 20
)

// hello is this provider's fabric.ConnHello.
type hello fabric.ConnHello

var helloFormat = fabric.HelloFormat{Magic: helloMagic, Version: helloVersion,
	MaxRecvDepth: maxRecvDepth, MaxMaxMessage: maxMaxMessage}

func (h hello) bytes() []byte {
	b := make([]byte, helloSize)
	helloFormat.Put(b, fabric.ConnHello(h))
	return b
}

// decodeHello reads a hello from private data, which the CM may have
// padded with zeros (InfiniBand CM carries 56 or 196 bytes).
func decodeHello(b []byte) (hello, error) {
	h, err := helloFormat.Decode(b)
	return hello(h), err
}

// headerSize is the size of the header in front of every two-sided
// message; the layout is in doc.go.
const headerSize = 8

// flagCredit marks a credit-only message: no payload, sent into the
// receive buffer each side keeps in reserve.
const flagCredit = 1

type header struct {
	// Credits returns receive buffers of ordinary messages.
	Credits uint32
	// Acked counts the credit-only messages the sender has received and
	// reposted the buffer of, modulo 2^16.
	Acked uint16
	Flags uint8
}

func (h header) put(b []byte) {
	_ = b[headerSize-1]
	binary.LittleEndian.PutUint32(b[0:], h.Credits)
	binary.LittleEndian.PutUint16(b[4:], h.Acked)
	b[6] = h.Flags
	b[7] = 0
}

// decodeHeader checks what does not depend on connection state: the
// size, unknown flags, reserved bits, and that a credit-only message has
// no payload and returns something.
func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("%w: message of %d bytes, header needs %d",
			ErrProtocol, len(b), headerSize)
	}
	h := header{
		Credits: binary.LittleEndian.Uint32(b[0:]),
		Acked:   binary.LittleEndian.Uint16(b[4:]),
		Flags:   b[6],
	}
	if h.Flags&^flagCredit != 0 || b[7] != 0 {
		return h, fmt.Errorf("%w: reserved header bits set (%#x, %#x)", ErrProtocol, b[6], b[7])
	}
	if h.Flags&flagCredit != 0 && (len(b) != headerSize || h.Credits == 0) {
		return h, fmt.Errorf("%w: credit-only message of %d bytes returning %d",
			ErrProtocol, len(b), h.Credits)
	}
	return h, nil
}
