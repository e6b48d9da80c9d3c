package stream

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/metric"
)

// fuzzFields are the fields an entry may carry, in the order the fuzz
// arguments give their values.
var fuzzFields = []string{"d", "c", "r", "t", "rt", "m", "g"}

// entryFromFuzz builds an entry from the seven field values; each bit of
// drop removes a field, and extra, when not empty, is added as another
// field (or overwrites one when it is a field's name).
func entryFromFuzz(vals [7]string, drop uint8, extraKey, extraVal string) map[string]any {
	m := make(map[string]any, 8)
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

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// sameEvent compares events bit for bit (so -0 differs from 0). An absent
// signal (NoCPU, NoRPS) has no value to compare; nil and empty slices are
// the same.
func sameEvent(a, b Event) bool {
	if a.DeviceID != b.DeviceID || a.Receipt != b.Receipt || a.NoCPU != b.NoCPU || a.NoRPS != b.NoRPS ||
		!sameFloat(a.Timestamp, b.Timestamp) ||
		!a.NoCPU && !sameFloat(a.CPU, b.CPU) || !a.NoRPS && !sameFloat(a.RPS, b.RPS) ||
		!slices.Equal(a.Tags, b.Tags) {
		return false
	}
	return slices.EqualFunc(a.Metrics, b.Metrics, func(x, y metric.Named) bool {
		return x.Name == y.Name && sameFloat(x.Value, y.Value)
	})
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
	case (e.NoCPU || e.NoRPS) && len(e.Metrics) == 0:
		t.Fatalf("accepted an absent signal without named metrics in %+v", e)
	case e.NoCPU && e.CPU != 0, e.NoRPS && e.RPS != 0:
		t.Fatalf("accepted a value for an absent signal in %+v", e)
	case len(e.Metrics) > metric.MaxMetricsLimit || len(e.Tags) > metric.MaxTags:
		t.Fatalf("accepted too many named metrics or tags in %+v", e)
	}
	names := map[string]bool{}
	for _, n := range e.Metrics {
		if !metric.ValidName(n.Name) || metric.Reserved(n.Name) || names[n.Name] || math.IsNaN(n.Value) || math.IsInf(n.Value, 0) {
			t.Fatalf("accepted named metric %+v in %+v", n, e)
		}
		names[n.Name] = true
	}
	keys := map[string]bool{}
	for _, tg := range e.Tags {
		if !metric.ValidTagKey(tg.Key) || !metric.ValidTagValue(tg.Value) || keys[tg.Key] {
			t.Fatalf("accepted tag %+v in %+v", tg, e)
		}
		keys[tg.Key] = true
	}
}

// FuzzDecode feeds Decode arbitrary entries, as a corrupted stream or a
// foreign writer could leave them: it must never panic, must reject with
// ErrMalformed only, must accept only events that satisfy the rules, and
// an accepted event must encode (Values) to an entry that decodes back to
// it bit for bit.
func FuzzDecode(f *testing.F) {
	const noMG = 0b1100000 // drop m and g: an entry of the five original fields
	seeds := []struct {
		vals     [7]string
		drop     uint8
		key, val string
	}{
		{[7]string{"device_1", "50.5", "100", "1.23456789e+09", "1700000000000000000"}, noMG, "", ""},
		{[7]string{"a.b_c:d-E9", "0", "0", "946684800", "0"}, noMG, "", ""},
		{[7]string{"d", "-0", "-0", "-1e308", "-9223372036854775808"}, noMG, "", ""},
		{[7]string{"d", "100", "1.7976931348623157e+308", "4.9e-324", "9223372036854775807"}, noMG, "", ""},
		{[7]string{"d", "1e2", "0x1p-2", "1_0", "+1"}, noMG, "", ""},
		{[7]string{"d", "NaN", "Inf", "-Inf", "1.5"}, noMG, "", ""},
		{[7]string{"d", "100.0000000000001", "-1e-320", "1", "1"}, noMG, "", ""},
		{[7]string{"", "1", "1", "1", "1"}, noMG, "", ""},
		{[7]string{"a b", "1", "1", "1", "1"}, noMG, "", ""},
		{[7]string{"d\xff", "1", "1", "1", "1"}, noMG, "", ""},
		{[7]string{"d", "1", "1", "1", "1"}, noMG | 0b00100, "", ""},
		{[7]string{"d", "1", "1", "1", "1"}, noMG, "x", "1"},
		{[7]string{"d", "1", "1", "1", "1"}, noMG | 0b10000, "x", "1"},
		{[7]string{"d", "1", "1", "1", "99999999999999999999"}, noMG, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "temperature=21.5,battery_v=3.71", "site=berlin,model=x1"}, 0, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "a=-0,b=0x1p-2,c=1e-400", "k=v"}, 0b0000110, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "a=1,a=2", "k=v,k=w"}, 0b0000010, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "cpu=1,rps=2", "K=v"}, 0, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "a=NaN,b=Inf,c=1e999", "k="}, 0, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "a,=1,a==1", "a=b=c,,"}, 0, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "", ""}, 0b0000110, "", ""},
		{[7]string{"d", "1", "1", "1", "1", "a=1", "k=v"}, 0b0000110, "m", "b=2"},
	}
	for _, s := range seeds {
		f.Add(s.vals[0], s.vals[1], s.vals[2], s.vals[3], s.vals[4], s.vals[5], s.vals[6], s.drop, s.key, s.val)
	}
	f.Fuzz(func(t *testing.T, d, c, r, ts, rt, m, g string, drop uint8, extraKey, extraVal string) {
		e, err := Decode(entryFromFuzz([7]string{d, c, r, ts, rt, m, g}, drop, extraKey, extraVal))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v is not ErrMalformed", err)
			}
			if !reflect.DeepEqual(e, Event{}) {
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
// analyzer dead-letters it), never accepted altered. An event has up to
// two named metrics (an empty name means none) and one tag (an empty key
// means none).
func FuzzRoundTrip(f *testing.F) {
	f.Add("device_1", 50.5, 100.0, 1234567890.0, int64(1700000000000000000), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", 0.0, 0.0, 0.0, int64(0), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", math.Copysign(0, -1), math.Copysign(0, -1), -1.5, int64(-1), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", 100.0, math.MaxFloat64, math.SmallestNonzeroFloat64, int64(math.MaxInt64), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", 0.1+0.2, 1e-300, 1.7e9+0.123456789, int64(math.MinInt64), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", 100.00000000000001, -1e-320, math.Inf(1), int64(1), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", math.NaN(), 1.0, 1.0, int64(1), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("", 1.0, 1.0, 1.0, int64(1), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("é", 1.0, 1.0, 1.0, int64(1), false, false, "", 0.0, "", 0.0, "", "")
	f.Add("d", 0.0, 0.0, 1.0, int64(1), true, true, "temperature", 21.5, "battery_v", 3.71, "site", "berlin")
	f.Add("d", 1.0, 2.0, 1.0, int64(1), false, true, "a", math.Copysign(0, -1), "b", -math.MaxFloat64, "", "x")
	f.Add("d", 1.0, 2.0, 1.0, int64(1), true, false, "a", 1.0, "a", 2.0, "k", "v")
	f.Add("d", 1.0, 2.0, 1.0, int64(1), true, true, "", 1.0, "", 2.0, "k", "v")
	f.Add("d", 1.0, 2.0, 1.0, int64(1), false, false, "cpu", 1.0, "a,b", 2.0, "k", "a,b=c")
	f.Add("d", 1.0, 2.0, 1.0, int64(1), false, false, "a", math.NaN(), "b", math.Inf(-1), "K", "")
	f.Fuzz(func(t *testing.T, device string, cpu, rps, ts float64, rt int64, noCPU, noRPS bool,
		name1 string, v1 float64, name2 string, v2 float64, tagKey, tagVal string) {
		in := Event{DeviceID: device, CPU: cpu, RPS: rps, NoCPU: noCPU, NoRPS: noRPS, Timestamp: ts, Receipt: rt}
		finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
		validNamed := true
		for _, n := range []metric.Named{{Name: name1, Value: v1}, {Name: name2, Value: v2}} {
			if n.Name == "" {
				continue
			}
			validNamed = validNamed && metric.ValidName(n.Name) && !metric.Reserved(n.Name) && finite(n.Value) &&
				(len(in.Metrics) == 0 || in.Metrics[0].Name != n.Name)
			in.Metrics = append(in.Metrics, n)
		}
		if tagKey != "" {
			in.Tags = []metric.Tag{{Key: tagKey, Value: tagVal}}
		}
		valid := validDeviceID(device) && (noCPU || cpu >= 0 && cpu <= 100) && (noRPS || rps >= 0 && rps <= metric.MaxRPS) &&
			finite(ts) && validNamed && (tagKey == "" || metric.ValidTagKey(tagKey) && metric.ValidTagValue(tagVal)) &&
			(!noCPU && !noRPS || len(in.Metrics) > 0)
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
// body that ingest accepts (metric.Decode) becomes entries (NewEvent) that
// the analyzer decodes to the same values, so valid input never reaches
// the dead-letter stream.
func FuzzIngestEntriesDecode(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":1234567890,"cpu":50.5,"rps":100.0,"device_id":"device_1"}`,
		`[{"device_id":"a","cpu":1,"rps":2},{"device_id":"b","cpu":3,"rps":4,"timestamp":"2024-05-01T11:00:00.5+02:00"}]`,
		`{"device_id":"\u0041\/","cpu":1e2,"rps":-0,"timestamp":"2024-05-01T12:05:00Z"}`,
		`{"device_id":"d","cpu":-0.0,"rps":1.7976931348623157e308,"timestamp":946684800}`,
		`{"device_id":"d","cpu":0.000000000000000000001,"rps":4.9e-324,"timestamp":1.7e9}`,
		`{"device_id":"d","metrics":{"temperature":21.5,"battery_v":3.71},"tags":{"site":"berlin","model":"x1"}}`,
		`[{"device_id":"d","cpu":1,"metrics":{"a":-0,"b":1e-400,"c":-1.7976931348623157e308}},{"device_id":"d","cpu":1,"rps":2,"metrics":{},"tags":{}}]`,
		`{"device_id":"d","rps":1,"metrics":{"\u0061":1e300},"tags":{"k":"\u0041:-._"}}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	limits := metric.Limits{Batch: 8, Metrics: metric.MaxMetricsLimit}
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, _, err := metric.Decode(body, metric.JSON, now, limits, nil)
		if err != nil {
			return
		}
		for _, m := range ms {
			in := NewEvent(m, now.UnixNano())
			got, err := Decode(toMap(in.Values()))
			if err != nil || !sameEvent(got, in) {
				t.Fatalf("ingest accepted %+v but its entry %q decodes to %+v, %v", m, in.Values(), got, err)
			}
		}
	})
}
