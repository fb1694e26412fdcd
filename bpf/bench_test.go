package bpf

import (
	"context"
	"testing"

	"github.com/ferry-fabric/ferry/bpf/ref"
)

// BenchmarkScan runs each shipped extension over one full 1 MiB chunk per
// iteration; b.SetBytes makes go test report MB/s.
func BenchmarkScan(b *testing.B) {
	e := newTestEngine(b, 1)
	xs := loadShipped(b, e)
	s, err := e.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Release(s)

	for _, c := range []struct {
		name string
		ext  string
		data []byte
		args [8]uint64
	}{
		{"count/rec8", "count", records(1, DataMax/8, 8, 0, 16), recArgs(8, 0, 0, 3)},
		{"count/rec64", "count", records(1, DataMax/64, 64, 8, 16), recArgs(64, 8, 0, 3)},
		{"filter/rec64-1in16", "filter", records(1, DataMax/64, 64, 8, 16),
			recArgs(64, 8, 0, 3)},
		{"aggregate/rec8", "aggregate", records(1, DataMax/8, 8, 0, 1<<40),
			recArgs(8, 0, 0, 0)},
		{"aggregate/rec64", "aggregate", records(1, DataMax/64, 64, 0, 1<<40),
			recArgs(64, 0, 0, 0)},
		{"grep/len4-random", "grep", records(2, DataMax/8, 8, 0, 1<<63),
			ref.GrepPattern([]byte("ferr"))},
		{"grep/len6-acgt", "grep", text(3, DataMax), ref.GrepPattern([]byte("gattac"))},
	} {
		b.Run(c.name, func(b *testing.B) {
			copy(s.Data, c.data)
			in := RunInput{DataLen: DataMax, ResultCap: ResultMax, BlockSize: 4096,
				Args: c.args}
			b.SetBytes(DataMax)
			for b.Loop() {
				out, err := e.Run(xs[c.ext], s, in)
				if err != nil || out.Ret != 0 {
					b.Fatalf("run: %v, ret %d", err, out.Ret)
				}
			}
		})
	}
}
