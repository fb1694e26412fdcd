package bpf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ABI sizes, identical to FERRY_*_MAX in bpf/include/ferry.h: the value
// sizes of the engine's maps. The verifier bounds extension accesses with
// these constants, so they cannot change without recompiling extensions.
const (
	DataMax    = 1 << 20   // bytes of block data in one slot
	ResultMax  = 256 << 10 // bytes of result in one slot
	ScratchMax = 4096      // bytes of scratch in one slot
)

// Config configures an Engine.
type Config struct {
	Slots  int          // concurrent executions; default 2*runtime.GOMAXPROCS(0)
	Logger *slog.Logger // optional; nil means discard

	// VerboseVerifier asks the verifier for its whole trace when a program
	// fails to load. The default log holds the error and statistics only:
	// a full trace of a hostile program can run to hundreds of megabytes.
	VerboseVerifier bool
}

// Engine owns the slot maps and runs extensions over them. Its methods are
// safe for concurrent use; Close must come after every Run has returned.
type Engine struct {
	cfg Config
	log *slog.Logger

	data, result, scratch *ebpf.Map
	dataMem, resultMem    []byte

	slots []Slot
	free  chan *Slot

	closeOnce sync.Once
	closed    chan struct{}
}

// Slot is one element of each of the engine's maps: where one request's
// blocks and result live while an extension runs over them.
type Slot struct {
	Index  int
	Data   []byte // DataMax bytes, inside Engine.DataMemory
	Result []byte // ResultMax bytes, inside Engine.ResultMemory

	e     *Engine
	inUse atomic.Bool
}

// DataOffset is the offset of s.Data within Engine.DataMemory.
func (s *Slot) DataOffset() int { return s.Index * DataMax }

// ResultOffset is the offset of s.Result within Engine.ResultMemory.
func (s *Slot) ResultOffset() int { return s.Index * ResultMax }

// NewEngine creates the engine's maps (ferry_data, ferry_result,
// ferry_scratch; one element per slot) and mmaps the data and result maps.
// It needs CAP_BPF (root) and Linux 5.5 or later for mmapable arrays.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Slots == 0 {
		cfg.Slots = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.Slots < 0 || cfg.Slots > 4096 {
		return nil, fmt.Errorf("create engine: %d slots: %w", cfg.Slots, ErrInvalidInput)
	}
	e := &Engine{
		cfg:    cfg,
		log:    cfg.Logger,
		free:   make(chan *Slot, cfg.Slots),
		closed: make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	// Set up in order; on error, Close unwinds whatever exists.
	var err error
	if e.data, err = newSlotMap("ferry_data", DataMax, cfg.Slots, true); err != nil {
		return nil, e.closeAfter(err)
	}
	if e.result, err = newSlotMap("ferry_result", ResultMax, cfg.Slots, true); err != nil {
		return nil, e.closeAfter(err)
	}
	if e.scratch, err = newSlotMap("ferry_scratch", ScratchMax, cfg.Slots, false); err != nil {
		return nil, e.closeAfter(err)
	}
	if e.dataMem, err = mmapMap(e.data, DataMax*cfg.Slots); err != nil {
		return nil, e.closeAfter(err)
	}
	if e.resultMem, err = mmapMap(e.result, ResultMax*cfg.Slots); err != nil {
		return nil, e.closeAfter(err)
	}

	e.slots = make([]Slot, cfg.Slots)
	for i := range e.slots {
		s := &e.slots[i]
		s.Index = i
		s.Data = e.dataMem[i*DataMax : (i+1)*DataMax : (i+1)*DataMax]
		s.Result = e.resultMem[i*ResultMax : (i+1)*ResultMax : (i+1)*ResultMax]
		s.e = e
		e.free <- s
	}
	e.log.Debug("engine created", "slots", cfg.Slots)
	return e, nil
}

func newSlotMap(name string, valueSize uint32, slots int, mmapable bool) (*ebpf.Map, error) {
	spec := &ebpf.MapSpec{
		Name:       name,
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  valueSize,
		MaxEntries: uint32(slots),
	}
	if mmapable {
		spec.Flags = unix.BPF_F_MMAPABLE
	}
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create map %s: %w", name, err)
	}
	return m, nil
}

// mmapMap maps the whole value area of an mmapable array. Value sizes are
// page multiples, so element i starts at i*valueSize.
func mmapMap(m *ebpf.Map, size int) ([]byte, error) {
	mem, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap map %s: %w", m.String(), err)
	}
	return mem, nil
}

func (e *Engine) closeAfter(err error) error {
	if cerr := e.Close(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// Close unmaps and closes the maps. Loaded extensions keep working only
// until their own Close; slots must not be used afterwards.
func (e *Engine) Close() error {
	var errs []error
	e.closeOnce.Do(func() {
		close(e.closed)

		// Unwind in the reverse order of NewEngine.
		if e.resultMem != nil {
			if err := unix.Munmap(e.resultMem); err != nil {
				errs = append(errs, fmt.Errorf("unmap results: %w", err))
			}
		}
		if e.dataMem != nil {
			if err := unix.Munmap(e.dataMem); err != nil {
				errs = append(errs, fmt.Errorf("unmap data: %w", err))
			}
		}
		for _, m := range []*ebpf.Map{e.scratch, e.result, e.data} {
			if m == nil {
				continue
			}
			if err := m.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close map: %w", err))
			}
		}
	})
	return errors.Join(errs...)
}

// Slots returns the number of slots.
func (e *Engine) Slots() int { return e.cfg.Slots }

// DataMemory is the whole mmapped data map: Slots*DataMax bytes, slot i
// at i*DataMax. It is valid until Close.
func (e *Engine) DataMemory() []byte { return e.dataMem }

// ResultMemory is the whole mmapped result map: Slots*ResultMax bytes.
func (e *Engine) ResultMemory() []byte { return e.resultMem }

// Acquire waits for a free slot, or for ctx to end, or for Close.
func (e *Engine) Acquire(ctx context.Context) (*Slot, error) {
	select {
	case <-e.closed:
		return nil, fmt.Errorf("acquire slot: %w", ErrClosed)
	default:
	}
	select {
	case s := <-e.free:
		s.inUse.Store(true)
		return s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("acquire slot: %w", ctx.Err())
	case <-e.closed:
		return nil, fmt.Errorf("acquire slot: %w", ErrClosed)
	}
}

// TryAcquire takes a free slot if there is one, without waiting. Callers
// that already hold a slot use it for extra ones, so that two requests
// each waiting for a second slot can never deadlock.
func (e *Engine) TryAcquire() (*Slot, bool) {
	select {
	case <-e.closed:
		return nil, false
	default:
	}
	select {
	case s := <-e.free:
		s.inUse.Store(true)
		return s, true
	default:
		return nil, false
	}
}

// Release returns a slot from Acquire. Releasing a slot twice, or one of
// another engine, is a bug in the caller; it is logged and ignored.
func (e *Engine) Release(s *Slot) {
	if s == nil || s.e != e || !s.inUse.CompareAndSwap(true, false) {
		e.log.Error("release of a slot not held", "slot", s)
		return
	}
	e.free <- s
}
