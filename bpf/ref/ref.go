package ref

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// ChunkMax is the largest chunk the target hands an extension: one slot of
// the engine's data map (bpf.DataMax).
const ChunkMax = 1 << 20

// ErrInvalid means the arguments are bad; the BPF programs return
// FERRY_EINVAL for the same arguments.
var ErrInvalid = errors.New("invalid arguments")

// Chunk is the state of one run, the counterpart of struct ferry_ctx.
type Chunk struct {
	Data      []byte // the chunk's blocks
	BlockSize uint32
	LBA       uint64 // first block of the chunk
	Index     uint32 // chunk number within the request, 0 first
	Args      [8]uint64
	Out       [4]uint64 // carried from chunk to chunk
	Result    []byte    // carried; append while len(Result) < ResultCap allows
	ResultCap int
}

// Func processes one chunk, like one BPF_PROG_RUN of an extension.
type Func func(c *Chunk) error

// Funcs maps each shipped extension's name to its reference.
var Funcs = map[string]Func{
	"aggregate": AggregateChunk,
	"count":     CountChunk,
	"filter":    FilterChunk,
	"grep":      GrepChunk,
}

// Names returns the keys of Funcs, sorted.
func Names() []string {
	names := make([]string, 0, len(Funcs))
	for n := range Funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Run splits data into chunks of chunkSize bytes (a multiple of blockSize,
// at most ChunkMax) and runs fn over them in order, as the target does.
// An empty data runs one chunk of length zero.
func Run(fn Func, data []byte, blockSize uint32, lba uint64, args [8]uint64,
	resultCap, chunkSize int) ([4]uint64, []byte, error) {
	if blockSize == 0 || chunkSize <= 0 || chunkSize > ChunkMax ||
		chunkSize%int(blockSize) != 0 || len(data)%int(blockSize) != 0 {
		return [4]uint64{}, nil, fmt.Errorf("split data: %w", ErrInvalid)
	}

	c := Chunk{BlockSize: blockSize, Args: args, ResultCap: resultCap, Result: []byte{}}
	for off := 0; off == 0 || off < len(data); off += chunkSize {
		end := min(off+chunkSize, len(data))
		c.Data = data[off:end]
		c.LBA = lba + uint64(off/int(blockSize))
		if err := fn(&c); err != nil {
			return c.Out, c.Result, err
		}
		c.Index++
	}
	return c.Out, c.Result, nil
}

// Count runs CountChunk over data in chunks of ChunkMax.
func Count(data []byte, blockSize uint32, lba uint64, args [8]uint64,
	resultCap int) ([4]uint64, []byte, error) {
	return Run(CountChunk, data, blockSize, lba, args, resultCap, ChunkMax)
}

// Filter runs FilterChunk over data in chunks of ChunkMax.
func Filter(data []byte, blockSize uint32, lba uint64, args [8]uint64,
	resultCap int) ([4]uint64, []byte, error) {
	return Run(FilterChunk, data, blockSize, lba, args, resultCap, ChunkMax)
}

// Aggregate runs AggregateChunk over data in chunks of ChunkMax.
func Aggregate(data []byte, blockSize uint32, lba uint64, args [8]uint64,
	resultCap int) ([4]uint64, []byte, error) {
	return Run(AggregateChunk, data, blockSize, lba, args, resultCap, ChunkMax)
}

// Grep runs GrepChunk over data in chunks of ChunkMax.
func Grep(data []byte, blockSize uint32, lba uint64, args [8]uint64,
	resultCap int) ([4]uint64, []byte, error) {
	return Run(GrepChunk, data, blockSize, lba, args, resultCap, ChunkMax)
}

// records checks the record arguments shared by count, filter and
// aggregate, and returns the record size and field offset.
func records(c *Chunk, cmp bool) (rec, field int, err error) {
	r, f := c.Args[0], c.Args[1]
	bs := uint64(c.BlockSize)
	if r < 8 || r > 4096 || r%8 != 0 || bs == 0 || bs%r != 0 {
		return 0, 0, fmt.Errorf("check record size %d: %w", r, ErrInvalid)
	}
	if f%8 != 0 || f+8 > r {
		return 0, 0, fmt.Errorf("check field offset %d: %w", f, ErrInvalid)
	}
	if cmp && c.Args[2] > 5 {
		return 0, 0, fmt.Errorf("check comparison %d: %w", c.Args[2], ErrInvalid)
	}
	return int(r), int(f), nil
}

func compare(op, a, b uint64) bool {
	switch op {
	case 0:
		return a == b
	case 1:
		return a != b
	case 2:
		return a < b
	case 3:
		return a <= b
	case 4:
		return a > b
	default:
		return a >= b
	}
}

// CountChunk: out[0] += records whose field compares true.
// Args: record size, field offset, comparison (0 eq, 1 ne, 2 lt, 3 le,
// 4 gt, 5 ge; unsigned), value.
func CountChunk(c *Chunk) error {
	rec, field, err := records(c, true)
	if err != nil {
		return err
	}
	for off := 0; off+rec <= len(c.Data); off += rec {
		v := binary.LittleEndian.Uint64(c.Data[off+field:])
		if compare(c.Args[2], v, c.Args[3]) {
			c.Out[0]++
		}
	}
	return nil
}

// FilterChunk: like CountChunk, and appends each matching record to the
// result while it fits; out[1] += records copied.
func FilterChunk(c *Chunk) error {
	rec, field, err := records(c, true)
	if err != nil {
		return err
	}
	for off := 0; off+rec <= len(c.Data); off += rec {
		v := binary.LittleEndian.Uint64(c.Data[off+field:])
		if !compare(c.Args[2], v, c.Args[3]) {
			continue
		}
		c.Out[0]++
		if len(c.Result)+rec <= c.ResultCap {
			c.Result = append(c.Result, c.Data[off:off+rec]...)
			c.Out[1]++
		}
	}
	return nil
}

// AggregateChunk: out = sum (wrapping), min, max, count of the field.
// Args: record size, field offset.
func AggregateChunk(c *Chunk) error {
	rec, field, err := records(c, false)
	if err != nil {
		return err
	}
	if c.Index == 0 {
		c.Out[1], c.Out[2] = math.MaxUint64, 0
	}
	for off := 0; off+rec <= len(c.Data); off += rec {
		v := binary.LittleEndian.Uint64(c.Data[off+field:])
		c.Out[0] += v
		c.Out[1] = min(c.Out[1], v)
		c.Out[2] = max(c.Out[2], v)
		c.Out[3]++
	}
	return nil
}

// GrepPattern packs a pattern of 1 to 16 bytes into grep's arguments.
func GrepPattern(p []byte) [8]uint64 {
	var args [8]uint64
	args[0] = uint64(len(p))
	for i, b := range p[:min(len(p), 16)] {
		args[1+i/8] |= uint64(b) << (8 * (i % 8))
	}
	return args
}

// GrepChunk: out[0] += occurrences of the pattern starting within the
// chunk and ending within it; appends each one's absolute byte offset as a
// little-endian u64 while it fits; out[1] += offsets written.
// Args: pattern length (1..16), pattern bytes packed little-endian.
func GrepChunk(c *Chunk) error {
	n := c.Args[0]
	if n < 1 || n > 16 {
		return fmt.Errorf("check pattern length %d: %w", n, ErrInvalid)
	}
	pat := make([]byte, n)
	for i := range pat {
		pat[i] = byte(c.Args[1+i/8] >> (8 * (i % 8)))
	}
	base := c.LBA * uint64(c.BlockSize)
	for p := 0; p+len(pat) <= len(c.Data); p++ {
		if string(c.Data[p:p+len(pat)]) != string(pat) {
			continue
		}
		c.Out[0]++
		if len(c.Result)+8 <= c.ResultCap {
			c.Result = binary.LittleEndian.AppendUint64(c.Result, base+uint64(p))
			c.Out[1]++
		}
	}
	return nil
}
