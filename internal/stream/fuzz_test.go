package stream

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/metric"
)

// fuzzFields are the fields an entry may carry, in the order the fuzz
// arguments give their values.
var fuzzFields = []string{"d", "c", "r", "t", "rt"}

// entryFromFuzz builds an entry from the five field values; each bit of
// drop removes a field, and extra, when not empty, is added as a sixth
// field (or overwrites one when it is a field's name).
func entryFromFuzz(vals [5]string, drop uint8, extraKey, extraVal string) map[string]any {
	m := make(map[string]any, 6)
	for i, f := range fuzzFields {
		if drop&(1<<i) == 0 {
			m[f] = vals[i]
		}
	}
	if extraKey != "" {
		m[extraKey] = extraVal
	}
	return m
}

// sameEvent compares events bit for bit (so -0 differs from 0).
func sameEvent(a, b Event) bool {
	return a.DeviceID == b.DeviceID && a.Receipt == b.Receipt &&
		math.Float64bits(a.CPU) == math.Float64bits(b.CPU) &&
		math.Float64bits(a.RPS) == math.Float64bits(b.RPS) &&
		math.Float64bits(a.Timestamp) == math.Float64bits(b.Timestamp)
}

// checkEvent fails unless e satisfies every rule Decode promises.
func checkEvent(t *testing.T, e Event) {
	t.Helper()
	switch {
	case !validDeviceID(e.DeviceID):
		t.Fatalf("accepted invalid device id in %+v", e)
	case !(e.CPU >= 0 && e.CPU <= 100):
		t.Fatalf("accepted cpu out of range in %+v", e)
	case !(e.RPS >= 0 && e.RPS <= metric.MaxRPS):
		t.Fatalf("accepted rps out of range in %+v", e)
	case math.IsNaN(e.Timestamp) || math.IsInf(e.Timestamp, 0):
		t.Fatalf("accepted a timestamp that is not finite in %+v", e)
	}
}

// FuzzDecode feeds Decode arbitrary entries, as a corrupted stream or a
// foreign writer could leave them: it must never panic, must reject with
// ErrMalformed only, must accept only events that satisfy the rules, and
// an accepted event must encode (Values) to an entry that decodes back to
// it bit for bit.
func FuzzDecode(f *testing.F) {
	seeds := []struct {
		vals     [5]string
		drop     uint8
		key, val string
	}{
		{[5]string{"device_1", "50.5", "100", "1.23456789e+09", "1700000000000000000"}, 0, "", ""},
		{[5]string{"a.b_c:d-E9", "0", "0", "946684800", "0"}, 0, "", ""},
		{[5]string{"d", "-0", "-0", "-1e308", "-9223372036854775808"}, 0, "", ""},
		{[5]string{"d", "100", "1.7976931348623157e+308", "4.9e-324", "9223372036854775807"}, 0, "", ""},
		{[5]string{"d", "1e2", "0x1p-2", "1_0", "+1"}, 0, "", ""},
		{[5]string{"d", "NaN", "Inf", "-Inf", "1.5"}, 0, "", ""},
		{[5]string{"d", "100.0000000000001", "-1e-320", "1", "1"}, 0, "", ""},
		{[5]string{"", "1", "1", "1", "1"}, 0, "", ""},
		{[5]string{"a b", "1", "1", "1", "1"}, 0, "", ""},
		{[5]string{"d\xff", "1", "1", "1", "1"}, 0, "", ""},
		{[5]string{"d", "1", "1", "1", "1"}, 0b00100, "", ""},
		{[5]string{"d", "1", "1", "1", "1"}, 0, "x", "1"},
		{[5]string{"d", "1", "1", "1", "1"}, 0b10000, "x", "1"},
		{[5]string{"d", "1", "1", "1", "99999999999999999999"}, 0, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.vals[0], s.vals[1], s.vals[2], s.vals[3], s.vals[4], s.drop, s.key, s.val)
	}
	f.Fuzz(func(t *testing.T, d, c, r, ts, rt string, drop uint8, extraKey, extraVal string) {
		e, err := Decode(entryFromFuzz([5]string{d, c, r, ts, rt}, drop, extraKey, extraVal))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v is not ErrMalformed", err)
			}
			if e != (Event{}) {
				t.Fatalf("Decode returned %+v with error %v", e, err)
			}
			return
		}
		checkEvent(t, e)
		again, err := Decode(toMap(e.Values()))
		if err != nil || !sameEvent(again, e) {
			t.Fatalf("re-decoding %q gave %+v, %v; want %+v", e.Values(), again, err, e)
		}
	})
}

// FuzzRoundTrip encodes arbitrary events: a valid one must come back bit
// for bit, an invalid one must be refused with ErrMalformed (so the
// analyzer dead-letters it), never accepted altered.
func FuzzRoundTrip(f *testing.F) {
	f.Add("device_1", 50.5, 100.0, 1234567890.0, int64(1700000000000000000))
	f.Add("d", 0.0, 0.0, 0.0, int64(0))
	f.Add("d", math.Copysign(0, -1), math.Copysign(0, -1), -1.5, int64(-1))
	f.Add("d", 100.0, math.MaxFloat64, math.SmallestNonzeroFloat64, int64(math.MaxInt64))
	f.Add("d", 0.1+0.2, 1e-300, 1.7e9+0.123456789, int64(math.MinInt64))
	f.Add("d", 100.00000000000001, -1e-320, math.Inf(1), int64(1))
	f.Add("d", math.NaN(), 1.0, 1.0, int64(1))
	f.Add("", 1.0, 1.0, 1.0, int64(1))
	f.Add("é", 1.0, 1.0, 1.0, int64(1))
	f.Fuzz(func(t *testing.T, device string, cpu, rps, ts float64, rt int64) {
		in := Event{DeviceID: device, CPU: cpu, RPS: rps, Timestamp: ts, Receipt: rt}
		valid := validDeviceID(device) && cpu >= 0 && cpu <= 100 && rps >= 0 && rps <= metric.MaxRPS &&
			!math.IsNaN(ts) && !math.IsInf(ts, 0)
		got, err := Decode(toMap(in.Values()))
		switch {
		case valid && (err != nil || !sameEvent(got, in)):
			t.Fatalf("round trip of %+v gave %+v, %v", in, got, err)
		case !valid && !errors.Is(err, ErrMalformed):
			t.Fatalf("invalid %+v decoded as %+v, %v; want ErrMalformed", in, got, err)
		}
	})
}

// FuzzIngestEntriesDecode is the pipeline's promise at the codec seam: a
// body that ingest accepts (metric.Decode) becomes entries that the
// analyzer decodes to the same values, so valid input never reaches the
// dead-letter stream.
func FuzzIngestEntriesDecode(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":1234567890,"cpu":50.5,"rps":100.0,"device_id":"device_1"}`,
		`[{"device_id":"a","cpu":1,"rps":2},{"device_id":"b","cpu":3,"rps":4,"timestamp":"2024-05-01T11:00:00.5+02:00"}]`,
		`{"device_id":"\u0041\/","cpu":1e2,"rps":-0,"timestamp":"2024-05-01T12:05:00Z"}`,
		`{"device_id":"d","cpu":-0.0,"rps":1.7976931348623157e308,"timestamp":946684800}`,
		`{"device_id":"d","cpu":0.000000000000000000001,"rps":4.9e-324,"timestamp":1.7e9}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, _, err := metric.Decode(body, metric.JSON, now, 8, nil)
		if err != nil {
			return
		}
		for _, m := range ms {
			in := Event{DeviceID: m.DeviceID, CPU: m.CPU, RPS: m.RPS, Timestamp: m.Timestamp, Receipt: now.UnixNano()}
			got, err := Decode(toMap(in.Values()))
			if err != nil || !sameEvent(got, in) {
				t.Fatalf("ingest accepted %+v but its entry %q decodes to %+v, %v", m, in.Values(), got, err)
			}
		}
	})
}
