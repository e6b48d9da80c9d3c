package score

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// The encoding: a version byte, N (4 bytes), 16 float64 (Last, Res,
// Level, Err, Loss, SLevel, Rate, Excess), Recent, Lo and Hi (float64),
// RangeN and Breaks (4 bytes each), the scheduled-spike record (Day, 4
// bytes, then Today and the Peaks, a slot byte and a size byte each), the
// bucket mask (8 bytes), then the values of the buckets whose bit is set,
// in order; little endian. A signal with a full daily profile takes 575
// bytes.
//
// Version 2, written before the scheduled-spike test, is version 3
// without its record; it decodes with no peaks, learnt from there on.
// Version 1, written before the burst and range tests, is version 2
// without Recent, Lo, Hi, RangeN and Breaks; it decodes with no recent
// exceedance and the range of the last value alone.
const (
	version   = 3
	versionV2 = 2
	versionV1 = 1
	v2Size    = 3*8 + 2*4           // what version 2 added
	v3Size    = 4 + (1+recurDays)*2 // what version 3 added
	fixedSize = 1 + 4 + 16*8 + v2Size + v3Size + 8
	// MaxBinarySize is the longest encoding.
	MaxBinarySize = fixedSize + nBuckets*8
)

// Version is the first byte of what AppendBinary writes; DecodePrefix
// also reads versions 1 and 2.
const Version = version

// ErrCorrupt is returned for bytes that are not a score state.
var ErrCorrupt = errors.New("corrupt score state")

// BinarySize is the length of st's encoding.
func (st *State) BinarySize() int { return fixedSize + 8*bits.OnesCount64(st.Seen) }

func (st *State) floats() [16]*float64 {
	return [16]*float64{&st.Last, &st.Res,
		&st.Level[0], &st.Level[1], &st.Level[2],
		&st.Err[0], &st.Err[1], &st.Err[2], &st.Err[3],
		&st.Loss[0], &st.Loss[1], &st.Loss[2], &st.Loss[3],
		&st.SLevel, &st.Rate, &st.Excess}
}

// AppendBinary appends st's encoding to dst.
func (st *State) AppendBinary(dst []byte) []byte {
	dst = append(dst, version)
	dst = binary.LittleEndian.AppendUint32(dst, st.N)
	for _, f := range st.floats() {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*f))
	}
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.Recent))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.Lo))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.Hi))
	dst = binary.LittleEndian.AppendUint32(dst, st.RangeN)
	dst = binary.LittleEndian.AppendUint32(dst, st.Breaks)
	dst = binary.LittleEndian.AppendUint32(dst, st.Day)
	for _, pk := range st.peaks() {
		dst = append(dst, pk.Slot, pk.Size)
	}
	dst = binary.LittleEndian.AppendUint64(dst, st.Seen)
	for b := range nBuckets {
		if st.Seen&(1<<b) != 0 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.Season[b]))
		}
	}
	return dst
}

// peaks are Today and the Peaks, in the encoding's order.
func (st *State) peaks() [1 + recurDays]*Peak {
	var p [1 + recurDays]*Peak
	p[0] = &st.Today
	for i := range st.Peaks {
		p[1+i] = &st.Peaks[i]
	}
	return p
}

// Decode decodes what AppendBinary wrote; b must hold exactly one state.
func Decode(b []byte) (State, error) {
	st, n, err := DecodePrefix(b)
	if err == nil && n != len(b) {
		return State{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b)-n)
	}
	return st, err
}

// DecodePrefix decodes the state at the start of b, of this version or
// an earlier one, and returns how many bytes it took. It accepts only
// states Observe can produce the shape of: finite numbers, non-negative
// spreads, a rate in [0, 1], a range that holds the last value, peaks
// within a day, buckets of the profile only; so scores stay finite and in
// [0, 1] after it.
func DecodePrefix(b []byte) (State, int, error) {
	var st State
	fixed := fixedSize
	if len(b) > 0 {
		switch b[0] {
		case versionV1:
			fixed -= v2Size + v3Size
		case versionV2:
			fixed -= v3Size
		}
	}
	if len(b) < fixed {
		return State{}, 0, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != version && b[0] != versionV2 && b[0] != versionV1 {
		return State{}, 0, fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	}
	st.N = binary.LittleEndian.Uint32(b[1:])
	off := 5
	for _, f := range st.floats() {
		*f = math.Float64frombits(binary.LittleEndian.Uint64(b[off:]))
		if math.IsNaN(*f) || math.IsInf(*f, 0) {
			return State{}, 0, fmt.Errorf("%w: not finite", ErrCorrupt)
		}
		off += 8
	}
	if b[0] >= versionV2 {
		st.Recent = math.Float64frombits(binary.LittleEndian.Uint64(b[off:]))
		st.Lo = math.Float64frombits(binary.LittleEndian.Uint64(b[off+8:]))
		st.Hi = math.Float64frombits(binary.LittleEndian.Uint64(b[off+16:]))
		st.RangeN = binary.LittleEndian.Uint32(b[off+24:])
		st.Breaks = binary.LittleEndian.Uint32(b[off+28:])
		off += v2Size
		// These comparisons also rule out NaN and ±Inf.
		if !(st.Recent >= 0 && st.Recent <= 1) {
			return State{}, 0, fmt.Errorf("%w: recent rate", ErrCorrupt)
		}
		if !(st.Lo <= st.Last && st.Last <= st.Hi) || st.Breaks > st.RangeN || (st.N > 0) != (st.RangeN > 0) {
			return State{}, 0, fmt.Errorf("%w: range", ErrCorrupt)
		}
	} else if st.N > 0 {
		st.Lo, st.Hi, st.RangeN = st.Last, st.Last, 1
	}
	if b[0] == version {
		st.Day = binary.LittleEndian.Uint32(b[off:])
		off += 4
		for _, pk := range st.peaks() {
			pk.Slot, pk.Size = b[off], b[off+1]
			off += 2
			if pk.Slot >= slots {
				return State{}, 0, fmt.Errorf("%w: peak slot %d", ErrCorrupt, pk.Slot)
			}
		}
	}
	st.Seen = binary.LittleEndian.Uint64(b[off:])
	off += 8
	if st.Seen>>nBuckets != 0 {
		return State{}, 0, fmt.Errorf("%w: bucket mask", ErrCorrupt)
	}
	if size := off + 8*bits.OnesCount64(st.Seen); len(b) < size {
		return State{}, 0, fmt.Errorf("%w: %d bytes, want %d", ErrCorrupt, len(b), size)
	}
	for i := range nBuckets {
		if st.Seen&(1<<i) == 0 {
			continue
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b[off:]))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return State{}, 0, fmt.Errorf("%w: not finite", ErrCorrupt)
		}
		st.Season[i] = v
		off += 8
	}
	if st.Res < 0 || st.Rate < 0 || st.Rate > 1 || st.Excess < 0 || st.Err[0] < 0 || st.Err[1] < 0 || st.Err[2] < 0 || st.Err[3] < 0 {
		return State{}, 0, fmt.Errorf("%w: negative spread or rate out of range", ErrCorrupt)
	}
	return st, off, nil
}
