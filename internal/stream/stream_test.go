package stream

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func toMap(vals []string) map[string]any {
	m := make(map[string]any, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		m[vals[i]] = vals[i+1]
	}
	return m
}

func TestRoundTripIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		e := Event{
			DeviceID:  "dev-" + string(rune('a'+r.IntN(26))),
			CPU:       r.Float64() * 100,
			RPS:       r.ExpFloat64() * 1000,
			Timestamp: 946684800 + r.Float64()*1e9,
			Receipt:   r.Int64(),
		}
		got, err := Decode(toMap(e.Values()))
		if err != nil {
			t.Fatalf("Decode(%+v): %v", e, err)
		}
		if got != e {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	good := Event{DeviceID: "d1", CPU: 50, RPS: 10, Timestamp: 1e9, Receipt: 1}.Values()
	with := func(field string, v any) map[string]any {
		m := toMap(good)
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		return m
	}
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"no device", with("d", nil)},
		{"bad device", with("d", "a b")},
		{"long device", with("d", string(make([]byte, 129)))},
		{"cpu not a number", with("c", "x")},
		{"cpu NaN", with("c", "NaN")},
		{"cpu above 100", with("c", "100.5")},
		{"rps negative", with("r", "-1")},
		{"rps infinite", with("r", "+Inf")},
		{"rps above metric.MaxRPS", with("r", "1000000000.0000001")},
		{"rps 1.8e308, as an older ingest accepted", with("r", "1.7976931348623157e+308")},
		{"no timestamp", with("t", nil)},
		{"receipt not an integer", with("rt", "1.5")},
		{"field not a string", with("c", 5)},
		{"extra field", with("x", "1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.values); !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestValuesUseShortestExactNumbers(t *testing.T) {
	vals := Event{DeviceID: "d", CPU: 50.5, RPS: 100, Timestamp: 1234567890, Receipt: 7}.Values()
	want := []string{"d", "d", "c", "50.5", "r", "100", "t", "1.23456789e+09", "rt", "7"}
	for i := range want {
		if vals[i] != want[i] {
			t.Fatalf("Values() = %q, want %q", vals, want)
		}
	}
}
