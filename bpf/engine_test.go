package bpf

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestEngineSlots(t *testing.T) {
	e := newTestEngine(t, 3)
	if e.Slots() != 3 || len(e.DataMemory()) != 3*DataMax ||
		len(e.ResultMemory()) != 3*ResultMax {
		t.Fatalf("slots %d, data %d, result %d", e.Slots(), len(e.DataMemory()),
			len(e.ResultMemory()))
	}

	ctx := context.Background()
	var held []*Slot
	for i := range 3 {
		s, err := e.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Data) != DataMax || len(s.Result) != ResultMax {
			t.Fatalf("slot %d: data %d result %d", i, len(s.Data), len(s.Result))
		}
		// The slot's slices are windows on the mmapped maps.
		s.Data[0], s.Result[0] = byte(10+s.Index), byte(20+s.Index)
		if e.DataMemory()[s.DataOffset()] != byte(10+s.Index) ||
			e.ResultMemory()[s.ResultOffset()] != byte(20+s.Index) {
			t.Fatalf("slot %d does not alias the mapped memory", s.Index)
		}
		held = append(held, s)
	}

	// All slots taken: Acquire waits until the context ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := e.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on a full engine = %v, want DeadlineExceeded", err)
	}

	e.Release(held[1])
	e.Release(held[1]) // a caller bug: ignored, not a second free slot
	s, err := e.Acquire(ctx)
	if err != nil || s != held[1] {
		t.Fatalf("Acquire = %v, %v, want slot 1 back", s, err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if _, err := e.Acquire(short2); err == nil {
		t.Fatal("double Release made a slot appear twice")
	}
	for _, s := range held {
		e.Release(s)
	}
}

func TestEngineClosed(t *testing.T) {
	requireKernel(t)
	e, err := NewEngine(Config{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := e.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close = %v, want ErrClosed", err)
	}
}

func TestEngineDefaultSlots(t *testing.T) {
	e := newTestEngine(t, 0)
	if e.Slots() < 2 {
		t.Fatalf("default slots %d", e.Slots())
	}
}
