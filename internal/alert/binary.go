package alert

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The encoding: a version byte, a flags byte (bit 0: open), the count of
// normal values (2 bytes), Events (4 bytes), then OpenedAt, ClosedAt,
// Score, Z, Value, Low and High as float64; little endian.
const (
	version = 1
	// BinarySize is the length of every encoding.
	BinarySize = 1 + 1 + 2 + 4 + 7*8
)

// ErrCorrupt is returned for bytes that are not an alert state.
var ErrCorrupt = errors.New("corrupt alert state")

func (st *State) floats() [7]*float64 {
	a := &st.Alert
	return [7]*float64{&a.OpenedAt, &a.ClosedAt, &a.Score, &a.Z, &a.Value, &a.Low, &a.High}
}

// AppendBinary appends st's encoding to dst.
func (st *State) AppendBinary(dst []byte) []byte {
	var flags byte
	if st.Alert.Open {
		flags = 1
	}
	dst = append(dst, version, flags)
	dst = binary.LittleEndian.AppendUint16(dst, st.normal)
	dst = binary.LittleEndian.AppendUint32(dst, st.Alert.Events)
	for _, f := range st.floats() {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*f))
	}
	return dst
}

// Decode decodes what AppendBinary wrote: exactly BinarySize bytes.
func Decode(b []byte) (State, error) {
	var st State
	if len(b) != BinarySize {
		return State{}, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != version {
		return State{}, fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	}
	if b[1] > 1 {
		return State{}, fmt.Errorf("%w: flags %#x", ErrCorrupt, b[1])
	}
	st.Alert.Open = b[1] == 1
	st.normal = binary.LittleEndian.Uint16(b[2:])
	st.Alert.Events = binary.LittleEndian.Uint32(b[4:])
	off := 8
	for _, f := range st.floats() {
		*f = math.Float64frombits(binary.LittleEndian.Uint64(b[off:]))
		off += 8
	}
	return st, nil
}
