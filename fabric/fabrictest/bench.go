package fabrictest

import (
	"context"
	"testing"

	"github.com/ferry-fabric/ferry/fabric"
)

// BenchmarkPingPong measures the round trip of a 64-byte message each
// way between the transports of p.
func BenchmarkPingPong(b *testing.B, p Provider) {
	f := NewPair(b, p, fabric.ConnOptions{})
	cli, srv := f.Connect(fabric.ConnOptions{})
	ctx := context.Background()

	// The target echoes until the connection closes.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := srv.Recv(ctx)
			if err != nil {
				return
			}
			err = srv.Send(ctx, m.Bytes())
			m.Release()
			if err != nil {
				return
			}
		}
	}()

	msg := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := cli.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		m, err := cli.Recv(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m.Release()
	}
	b.StopTimer()
	cli.Close()
	<-done
}

// BenchmarkWrite1MiB measures the throughput of one-sided 1 MiB writes
// from the initiator into the target, 8 in flight.
func BenchmarkWrite1MiB(b *testing.B, p Provider) {
	const size = 1 << 20
	f := NewPair(b, p, fabric.ConnOptions{})
	cli, _ := f.Connect(fabric.ConnOptions{})
	dst := Register(b, f.Target, p.alloc(b, size), fabric.AccessRemoteWrite)
	src := Register(b, f.Initiator, p.alloc(b, size), 0)

	cs := make([]fabric.Completion, 16)
	inflight := 0
	reap := func() {
		n, err := cli.Wait(context.Background(), cs)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cs[:n] {
			if c.Err != nil {
				b.Fatal(c.Err)
			}
		}
		inflight -= n
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := cli.PostWrite(0, src, 0, size, dst.Remote(), 0); err != nil {
			b.Fatal(err)
		}
		inflight++
		for inflight >= 8 {
			reap()
		}
	}
	for inflight > 0 {
		reap()
	}
}
