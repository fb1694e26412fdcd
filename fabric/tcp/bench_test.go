package tcp

import (
	"testing"

	"github.com/ferry-fabric/ferry/fabric/fabrictest"
)

// BenchmarkPingPong is the round trip of a 64-byte message each way.
func BenchmarkPingPong(b *testing.B) { fabrictest.BenchmarkPingPong(b, provider(nil)) }

// BenchmarkWrite1MiB is the throughput of one-sided 1 MiB writes, 8 in
// flight.
func BenchmarkWrite1MiB(b *testing.B) { fabrictest.BenchmarkWrite1MiB(b, provider(nil)) }
