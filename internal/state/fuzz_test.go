package state

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/score"
)

// fuzzWindow maps a fuzzed number to a window size the services can be
// configured with (WINDOW_SIZE is 2–10000; 1 is kept as an edge case).
func fuzzWindow(w uint16) int { return 1 + int(w)%10000 }

// flagsAt is the offset of the flags byte in a state of version v.
func flagsAt(v byte) int {
	if v == deviceVersionV1 {
		return 1 + 4*8 + 6*8
	}
	return 1 + 5*8 + 8*8
}

// deviceSeed encodes a state with rps and cpu windows of n values each.
func deviceSeed(n int, anomaly bool) []byte {
	d := NewDevice(max(n, 1))
	d.LastID = ID{1700000000000, 7}
	d.Total, d.Anomalies, d.LastSeen = 123, 4, 1.7e9
	d.Last = Last{Timestamp: 1.7e9, RPS: 100, CPU: 50, ZRPS: 2.5, ZCPU: -0.5, Anomaly: anomaly}
	for i := 0; i < n; i++ {
		d.RPS.Push(float64(i))
		d.CPU.Push(math.Copysign(float64(i)/10, -1))
	}
	return d.AppendBinary(nil)
}

// FuzzDecodeDevice feeds DecodeDevice arbitrary bytes, as a corrupted or
// foreign value under a device key could hold: it must never panic, must
// reject with ErrCorrupt only, and what it accepts must re-encode to a
// state that decodes to the same encoding; when the input is of the
// current version, the windows fit and the flags byte is canonical (0 or
// 1), to the input's very bytes.
func FuzzDecodeDevice(f *testing.F) {
	f.Add([]byte{}, uint16(49))
	f.Add([]byte{deviceVersion}, uint16(49))
	f.Add(deviceSeed(0, false), uint16(49))
	f.Add(deviceSeed(1, true), uint16(0))
	f.Add(deviceSeed(50, true), uint16(49))
	f.Add(deviceSeed(50, false), uint16(9))  // a smaller window keeps the newest
	f.Add(deviceSeed(70, false), uint16(99)) // more than the decoder's stack buffer
	nonCanonical := deviceSeed(3, true)
	nonCanonical[flagsAt(deviceVersion)] = 0xff
	f.Add(nonCanonical, uint16(49))
	huge := deviceSeed(0, false)
	binary.LittleEndian.PutUint16(huge[flagsAt(deviceVersion)+1:], 0xffff) // claims 65535 rps values
	f.Add(huge, uint16(49))
	f.Add(append(deviceSeed(2, false), 0), uint16(49))
	f.Add(warmDevice(rand.New(rand.NewPCG(1, 2)), 400).AppendBinary(nil), uint16(49))
	f.Add(namedDevice(rand.New(rand.NewPCG(1, 3))).AppendBinary(nil), uint16(49)) // named signals and tags
	// Version 1, before scores and alerts.
	v1, _ := hex.DecodeString("017b68e5cf8b01000004000000000000002c0300000000000009000000000000" +
		"0000000840fc54d94100000040fc54d94100000000000480400000000000a044" +
		"400000000000001a40000000000000e8bf010200000000000000594000000000" +
		"00048040020000000000000044400000000000a04440")
	f.Add(v1, uint16(49))
	f.Fuzz(func(t *testing.T, b []byte, w uint16) {
		window := fuzzWindow(w)
		d, err := DecodeDevice(b, window)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeDevice error %v is not ErrCorrupt", err)
			}
			if d != nil {
				t.Fatalf("DecodeDevice returned a state with error %v", err)
			}
			return
		}
		if d.RPS.Len() > window || d.CPU.Len() > window {
			t.Fatalf("window %d: decoded windows hold %d and %d values", window, d.RPS.Len(), d.CPU.Len())
		}
		enc := d.AppendBinary(nil)
		d2, err := DecodeDevice(enc, window)
		if err != nil {
			t.Fatalf("re-decoding %x: %v", enc, err)
		}
		if enc2 := d2.AppendBinary(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
		at := flagsAt(b[0])
		flags := b[at]
		nRPS := int(binary.LittleEndian.Uint16(b[at+1:]))
		nCPU := int(binary.LittleEndian.Uint16(b[at+1+2+8*nRPS:]))
		// (Named signals' windows and score versions are not checked here:
		// states with them are held to a stable encoding only.)
		if b[0] == deviceVersion && len(d.Named) == 0 && flags <= 1 && nRPS <= window && nCPU <= window && currentScores(b[at+1+2+8*nRPS+2+8*nCPU:]) && !bytes.Equal(enc, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, enc)
		}
		// The decoded window keeps as many values as configured, no more.
		for range window + 1 {
			d.RPS.Push(1)
		}
		if d.RPS.Len() != max(window, 1) {
			t.Fatalf("window %d: a full decoded window holds %d values", window, d.RPS.Len())
		}
	})
}

// currentScores reports whether both signals' score states, encoded in b
// after the windows, are of the current version (an earlier one is
// upgraded, so it re-encodes differently).
func currentScores(b []byte) bool {
	off := 0
	for range NumSignals {
		if b[off] == 1 {
			off += 3*8 + alert.BinarySize
		}
		if b[off+1] != score.Version {
			return false
		}
		_, n, _ := score.DecodePrefix(b[off+1:])
		off += 1 + n
	}
	return true
}

// FuzzDecodeRecent feeds DecodeRecent arbitrary bytes: it must never
// panic, must reject only lengths that are not whole records, and must
// keep the newest size records in order.
func FuzzDecodeRecent(f *testing.F) {
	r := &Recent{Size: 50}
	for i := uint64(1); i <= 60; i++ {
		r.Add(ID{1700000000000 + i, i % 3}, float64(i)*1.5)
	}
	f.Add(r.AppendBinary(nil), uint16(49))
	f.Add(r.AppendBinary(nil), uint16(0))
	f.Add([]byte{}, uint16(49))
	f.Add(make([]byte, 23), uint16(49))
	f.Add(make([]byte, 48), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, s uint16) {
		size := fuzzWindow(s)
		got, err := DecodeRecent(b, size)
		if len(b)%24 != 0 {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeRecent of %d bytes = %v, want ErrCorrupt", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeRecent of %d bytes: %v", len(b), err)
		}
		n := len(b) / 24
		keep := min(n, size)
		if len(got.IDs) != keep || len(got.RPS) != keep || got.Size != size {
			t.Fatalf("%d records, size %d: got %d ids, %d values, size %d", n, size, len(got.IDs), len(got.RPS), got.Size)
		}
		if enc := got.AppendBinary(nil); !bytes.Equal(enc, b[24*(n-keep):]) {
			t.Fatalf("re-encoding is not the newest %d records of the input", keep)
		}
	})
}

// FuzzDecodeAlert feeds DecodeAlert arbitrary bytes: it must never panic,
// must reject with ErrCorrupt only, and what it accepts must re-encode to
// the input's very bytes.
func FuzzDecodeAlert(f *testing.F) {
	f.Add([]byte{})
	f.Add(Alert{DeviceID: "sensor-42", Seq: 3, Signal: "rps", Open: true, OpenedID: ID{1700000000000, 1}, OpenedAt: 1.7e9,
		Score: 0.5, Z: 4, Value: 9, Low: 1, High: 2, Events: 1}.AppendBinary(nil))
	f.Add(Alert{DeviceID: "d", Seq: 1, Signal: "cpu", ClosedAt: 5, Events: 9}.AppendBinary(nil))
	f.Add(Alert{DeviceID: "d", Seq: 2, Signal: "temperature", ClosedAt: 5, Events: 9}.AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAlert(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeAlert error %v is not ErrCorrupt", err)
			}
			return
		}
		// A record of version 1 re-encodes as the current version, the
		// same bytes after the version.
		if enc := a.AppendBinary(nil); enc[0] != alertVersion || !bytes.Equal(enc[1:], b[1:]) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, enc)
		}
	})
}
