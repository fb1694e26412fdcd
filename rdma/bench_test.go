package rdma

import (
	"testing"
	"time"

	"github.com/ferry-fabric/ferry/fabric/fabrictest"
)

// BenchmarkPingPong is the round trip of a 64-byte message each way,
// with completion channels.
func BenchmarkPingPong(b *testing.B) { fabrictest.BenchmarkPingPong(b, provider(b, Options{})) }

// BenchmarkPingPongBusy is BenchmarkPingPong with busy polling.
func BenchmarkPingPongBusy(b *testing.B) {
	fabrictest.BenchmarkPingPong(b, provider(b, Options{BusyPoll: true}))
}

// BenchmarkPingPongSpin is BenchmarkPingPong with several spins of the
// poller before it sleeps.
func BenchmarkPingPongSpin(b *testing.B) {
	defer func(s time.Duration) { pollSpin = s }(pollSpin)
	for _, s := range []time.Duration{0, 20 * time.Microsecond, 100 * time.Microsecond,
		500 * time.Microsecond} {
		b.Run(s.String(), func(b *testing.B) {
			pollSpin = s
			fabrictest.BenchmarkPingPong(b, provider(b, Options{}))
		})
	}
}

// BenchmarkWrite1MiB is the throughput of one-sided 1 MiB writes, 8 in
// flight.
func BenchmarkWrite1MiB(b *testing.B) { fabrictest.BenchmarkWrite1MiB(b, provider(b, Options{})) }
