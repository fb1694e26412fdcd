package rdma

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/fabric"
)

// BenchmarkPingPong is the round trip of a 64-byte message each way,
// with completion channels.
func BenchmarkPingPong(b *testing.B) { benchPingPong(b, Options{}) }

// BenchmarkPingPongBusy is BenchmarkPingPong with busy polling.
func BenchmarkPingPongBusy(b *testing.B) { benchPingPong(b, Options{BusyPoll: true}) }

// BenchmarkPingPongSpin is BenchmarkPingPong with several spins of the
// poller before it sleeps.
func BenchmarkPingPongSpin(b *testing.B) {
	defer func(s time.Duration) { pollSpin = s }(pollSpin)
	for _, s := range []time.Duration{0, 20 * time.Microsecond, 100 * time.Microsecond,
		500 * time.Microsecond} {
		b.Run(s.String(), func(b *testing.B) {
			pollSpin = s
			benchPingPong(b, Options{})
		})
	}
}

func benchPingPong(b *testing.B, opts Options) {
	f := newFixtureWith(b, fabric.ConnOptions{}, opts)
	cli, srv := f.connect(fabric.ConnOptions{})
	ctx := context.Background()

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

// BenchmarkWrite1MiB is the throughput of one-sided 1 MiB writes, 8 in
// flight.
func BenchmarkWrite1MiB(b *testing.B) {
	const size = 1 << 20
	f := newFixture(b, fabric.ConnOptions{})
	cli, _ := f.connect(fabric.ConnOptions{})
	dst := register(b, f.srv, mmapped(b, size), fabric.AccessRemoteWrite)
	src := register(b, f.cli, mmapped(b, size), 0)

	cs := make([]fabric.Completion, 16)
	inflight := 0
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := cli.PostWrite(0, src, 0, size, dst.Remote(), 0); err != nil {
			b.Fatal(err)
		}
		inflight++
		for inflight >= 8 {
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
	}
	for inflight > 0 {
		n, err := cli.Wait(context.Background(), cs)
		if err != nil {
			b.Fatal(err)
		}
		inflight -= n
	}
}
