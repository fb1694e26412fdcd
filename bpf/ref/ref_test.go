package ref

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func words(vs ...uint64) []byte {
	b := make([]byte, 0, 8*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func TestHandWorked(t *testing.T) {
	data := words(1, 5, 3, 5, 9, 0, 5, 2) // 8 records of 8 bytes, 4 blocks of 16
	out, _, err := Count(data, 16, 0, [8]uint64{8, 0, 0, 5}, 0)
	if err != nil || out[0] != 3 {
		t.Errorf("count eq 5 = %v, %v", out, err)
	}
	out, res, err := Filter(data, 16, 0, [8]uint64{8, 0, 4, 4}, 16)
	if err != nil || out[0] != 4 || out[1] != 2 || string(res) != string(words(5, 5)) {
		t.Errorf("filter gt 4 = %v %x, %v", out, res, err)
	}
	out, _, err = Aggregate(data, 16, 0, [8]uint64{8, 0}, 0)
	if err != nil || out != [4]uint64{30, 0, 9, 8} {
		t.Errorf("aggregate = %v, %v", out, err)
	}
	out, _, err = Aggregate(nil, 16, 0, [8]uint64{8, 0}, 0)
	if err != nil || out != [4]uint64{0, math.MaxUint64, 0, 0} {
		t.Errorf("aggregate of nothing = %v, %v", out, err)
	}

	// Overlapping matches count; a match across the chunk seam does not.
	text := []byte("aaaa" + "aaab")
	out, res, err = Run(GrepChunk, text, 4, 10, GrepPattern([]byte("aa")), 64, 4)
	if err != nil || out[0] != 5 || string(res) != string(words(40, 41, 42, 44, 45)) {
		t.Errorf("grep = %v %v, %v", out, res, err)
	}
}

func TestGrepPattern(t *testing.T) {
	a := GrepPattern([]byte("0123456789abcdef"))
	if a[0] != 16 || a[1] != binary.LittleEndian.Uint64([]byte("01234567")) ||
		a[2] != binary.LittleEndian.Uint64([]byte("89abcdef")) {
		t.Errorf("GrepPattern = %x", a)
	}
}

func TestBadArgs(t *testing.T) {
	for _, a := range [][8]uint64{{0}, {12}, {16, 12}, {16, 16}, {8, 0, 6}} {
		if _, _, err := Count(make([]byte, 512), 512, 0, a, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("Count(%v) = %v, want ErrInvalid", a, err)
		}
	}
	if _, _, err := Grep(make([]byte, 512), 512, 0, [8]uint64{17}, 0); !errors.Is(err,
		ErrInvalid) {
		t.Errorf("Grep(len 17) = %v, want ErrInvalid", err)
	}
}
