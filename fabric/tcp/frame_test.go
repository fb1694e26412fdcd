package tcp

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{Type: frameSend, Credits: 3, Length: 4096},
		{Type: frameWrite, Length: 1 << 20, Key: 0xdeadbeef, Addr: 0xc000100000},
		{Type: frameReadReq, Credits: 1, Length: 512, Key: 7, Addr: 1 << 40, ID: 99},
		{Type: frameReadResp, Length: 512, ID: 99},
		{Type: frameCredit, Credits: 64},
	} {
		var b [headerSize]byte
		h.put(b[:])
		got, err := decodeHeader(b[:])
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if got != h {
			t.Fatalf("decoded %+v, want %+v", got, h)
		}
	}
}

func TestHeaderRejects(t *testing.T) {
	for _, h := range []header{
		{Type: 0},
		{Type: frameEnd},
		{Type: frameSend, Key: 1},
		{Type: frameWrite, ID: 1},
		{Type: frameReadResp, Addr: 1},
		{Type: frameCredit, Length: 1},
	} {
		var b [headerSize]byte
		h.put(b[:])
		if _, err := decodeHeader(b[:]); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%+v: %v, want ErrProtocol", h, err)
		}
	}
	if _, err := decodeHeader(make([]byte, headerSize-1)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("short header: %v", err)
	}
}

// FuzzDecodeHeader checks that the decoder never panics and that whatever
// it accepts encodes back to the same bytes.
func FuzzDecodeHeader(f *testing.F) {
	for _, h := range []header{
		{Type: frameSend, Credits: 1, Length: 64},
		{Type: frameWrite, Length: 1 << 20, Key: 0x1234, Addr: 0xc000100000},
		{Type: frameReadReq, Length: 4096, Key: 0x1234, Addr: 0xc000100000, ID: 1},
		{Type: frameReadResp, Length: 4096, ID: 1},
		{Type: frameCredit, Credits: 32},
	} {
		var b [headerSize]byte
		h.put(b[:])
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		var out [headerSize]byte
		h.put(out[:])
		if !bytes.Equal(out[:], b[:headerSize]) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", h, out, b[:headerSize])
		}
	})
}

// FuzzDecodeHello does the same for the handshake.
func FuzzDecodeHello(f *testing.F) {
	var b [helloSize]byte
	hello{RecvDepth: 64, MaxMessage: 4096}.put(b[:])
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("error %v does not wrap ErrHandshake", err)
			}
			return
		}
		var out [helloSize]byte
		h.put(out[:])
		if !bytes.Equal(out[:], b[:helloSize]) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", h, out, b[:helloSize])
		}
	})
}
