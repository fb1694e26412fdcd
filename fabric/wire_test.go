package fabric

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var sampleRequests = []Request{
	&Hello{Tenant: "alice", QueueDepth: 32},
	&Load{Name: "count", ELF: RemoteRegion{Addr: 0x1000, Key: 7, Len: 4096}},
	&Unload{Handle: 3},
	&Exec{Handle: 1, NS: 1, LBA: 9, Blocks: 16, Args: []uint64{64, 8, 2, 1000},
		Result: RemoteRegion{Addr: 1, Key: 2, Len: 3}},
	&Exec{Handle: 1, NS: 1, LBA: 0, Blocks: 1},
	&ReadBlocks{NS: 1, LBA: 5, Blocks: 2, Dest: RemoteRegion{Addr: 10, Key: 11, Len: 8192}},
	&WriteBlocks{NS: 1, LBA: 5, Blocks: 2, Src: RemoteRegion{Addr: 10, Key: 11, Len: 8192}, FUA: true},
	&Flush{NS: 2},
	&Stats{},
}

func TestRequestRoundTrip(t *testing.T) {
	for _, req := range sampleRequests {
		b := AppendRequest(nil, 42, req)
		h, got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("%s: %v", req.Op(), err)
		}
		if h.ID != 42 || h.Op != req.Op() || h.Resp {
			t.Fatalf("%s: header %+v", req.Op(), h)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("%s: got %+v, want %+v", req.Op(), got, req)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	cases := []*Response{
		{Op: OpHello, ID: 1, Body: &HelloReply{QueueDepth: 64, MaxIOBytes: 1 << 20,
			MaxResultBytes: 1 << 18, Namespaces: []NamespaceInfo{{1, 4096, 100}, {2, 512, 7}}}},
		{Op: OpLoad, ID: 2, Body: &LoadReply{Handle: 5, Program: "count", Insns: 77}},
		{Op: OpExec, ID: 3, StorageNs: 10, BpfNs: 20, Body: &ExecReply{ResultLen: 8, Out: [4]uint64{1, 2, 3, 4}}},
		{Op: OpReadBlocks, ID: 4, Body: &IOReply{Bytes: 4096}},
		{Op: OpFlush, ID: 5, Body: &Empty{op: OpFlush}},
		{Op: OpStats, ID: 6, Body: &StatsReply{Counters: []Counter{{"ops", 1}, {"bytes", 2}}}},
		{Op: OpExec, ID: 7, Status: StatusOutOfRange, Message: "lba 9 past end 8"},
	}
	for _, want := range cases {
		b := AppendResponse(nil, 4096, want)
		got, err := DecodeResponse(b)
		if err != nil {
			t.Fatalf("%s: %v", want.Op, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v, want %+v", want.Op, got, want)
		}
	}
}

func TestResponseMessageCutKeepsTail(t *testing.T) {
	log := strings.Repeat("x", 10000) + "R1 invalid mem access"
	b := AppendResponse(nil, 1024, &Response{Op: OpLoad, ID: 1, Status: StatusVerifier, Message: log})
	if len(b) > 1024 {
		t.Fatalf("frame of %d bytes, limit 1024", len(b))
	}
	r, err := DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(r.Message, "R1 invalid mem access") || !strings.HasPrefix(r.Message, "[...] ") {
		t.Fatalf("message not cut from its start: %q", r.Message[:40])
	}
	var se *StatusError
	if !errors.As(r.Err(), &se) || se.Status != StatusVerifier {
		t.Fatalf("Err() = %v", r.Err())
	}
}

func TestDecodeRejects(t *testing.T) {
	good := AppendRequest(nil, 9, &Exec{Handle: 1, NS: 1, Blocks: 1, Args: []uint64{1}})
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"short header", good[:10], ErrMalformed},
		{"truncated body", mutate(func(b []byte) []byte { return b[:len(b)-1] }), ErrMalformed},
		{"trailing bytes", mutate(func(b []byte) []byte { return append(b, 0) }), ErrMalformed},
		{"bad magic", mutate(func(b []byte) []byte { b[0] ^= 0xff; return b }), ErrMalformed},
		{"version", mutate(func(b []byte) []byte { b[2] = 9; return b }), ErrVersion},
		{"unknown op", mutate(func(b []byte) []byte { b[3] = 0x7f; return b }), ErrUnknownOp},
		{"zero op", mutate(func(b []byte) []byte { b[3] = 0; return b }), ErrUnknownOp},
		{"reserved", mutate(func(b []byte) []byte { b[5] = 1; return b }), ErrMalformed},
		{"too many args", mutate(func(b []byte) []byte { b[HeaderSize+20] = 200; return b }), ErrMalformed},
		{"response as request", AppendResponse(nil, 0, &Response{Op: OpFlush, Body: &Empty{op: OpFlush}}), ErrMalformed},
	}
	for _, c := range cases {
		h, _, err := DecodeRequest(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
		if c.want != ErrMalformed && h.ID != 9 {
			t.Errorf("%s: id %d lost", c.name, h.ID)
		}
	}
}

func TestRemoteRegionSlice(t *testing.T) {
	r := RemoteRegion{Addr: 100, Key: 1, Len: 10}
	if s, ok := r.Slice(2, 8); !ok || s.Addr != 102 || s.Len != 8 {
		t.Fatalf("Slice(2, 8) = %+v %v", s, ok)
	}
	for _, c := range [][2]uint64{{0, 11}, {11, 0}, {5, 6}, {1 << 63, 1 << 63}} {
		if _, ok := r.Slice(c[0], c[1]); ok {
			t.Errorf("Slice(%d, %d) accepted", c[0], c[1])
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for i, req := range sampleRequests {
		f.Add(AppendRequest(nil, uint64(i), req))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, req, err := DecodeRequest(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes.
		again := AppendRequest(nil, h.ID, req)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, 0, &Response{Op: OpStats, Body: &StatsReply{Counters: []Counter{{"a", 1}}}}))
	f.Add(AppendResponse(nil, 0, &Response{Op: OpHello, Body: &HelloReply{Namespaces: []NamespaceInfo{{1, 512, 8}}}}))
	f.Add(AppendResponse(nil, 0, &Response{Op: OpExec, Status: StatusIO, Message: "eio"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			return
		}
		again := AppendResponse(nil, 0, r)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}
