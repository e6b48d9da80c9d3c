package stream

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pulse-iot/pulse/internal/metric"
)

func toMap(vals []string) map[string]any {
	m := make(map[string]any, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		m[vals[i]] = vals[i+1]
	}
	return m
}

// randomNamed returns up to n distinct valid named metrics with any finite
// values, nil for none.
func randomNamed(r *rand.Rand, n int) []metric.Named {
	var out []metric.Named
	seen := map[string]bool{"cpu": true, "rps": true}
	for range r.IntN(n + 1) {
		name := string(rune('a'+r.IntN(26))) + strconv.Itoa(r.IntN(1000))
		if r.IntN(10) == 0 {
			name = "m" + strings.Repeat("_", metric.MaxNameLen-2) + "z"
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		v := math.Float64frombits(r.Uint64())
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = r.NormFloat64()
		}
		out = append(out, metric.Named{Name: name, Value: v})
	}
	return out
}

// randomTags returns up to metric.MaxTags distinct valid tags, nil for none.
func randomTags(r *rand.Rand) []metric.Tag {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
	var out []metric.Tag
	seen := map[string]bool{}
	for range r.IntN(metric.MaxTags + 1) {
		k := string(rune('a'+r.IntN(26))) + strconv.Itoa(r.IntN(100))
		if seen[k] {
			continue
		}
		seen[k] = true
		v := make([]byte, 1+r.IntN(metric.MaxTagValueLen))
		for i := range v {
			v[i] = chars[r.IntN(len(chars))]
		}
		out = append(out, metric.Tag{Key: k, Value: string(v)})
	}
	return out
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
		if i%2 == 1 {
			e.Metrics = randomNamed(r, metric.MaxMetricsLimit)
			e.Tags = randomTags(r)
			if len(e.Metrics) > 0 {
				e.NoCPU, e.NoRPS = r.IntN(2) == 0, r.IntN(2) == 0
			}
		}
		got, err := Decode(toMap(e.Values()))
		if err != nil {
			t.Fatalf("Decode(%+v): %v", e, err)
		}
		if !sameEvent(got, e) {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want []string
	}{
		{"shortest exact numbers", Event{DeviceID: "d", CPU: 50.5, RPS: 100, Timestamp: 1234567890, Receipt: 7},
			[]string{"d", "d", "c", "50.5", "r", "100", "t", "1.23456789e+09", "rt", "7"}},
		{"named metrics and tags", Event{DeviceID: "d", NoCPU: true, NoRPS: true, Timestamp: 1714564800.5, Receipt: 7,
			Metrics: []metric.Named{{Name: "temperature", Value: 21.5}, {Name: "battery_v", Value: 3.71}},
			Tags:    []metric.Tag{{Key: "site", Value: "berlin"}, {Key: "model", Value: "x1"}}},
			[]string{"d", "d", "t", "1.7145648005e+09", "rt", "7", "m", "temperature=21.5,battery_v=3.71", "g", "site=berlin,model=x1"}},
		{"no rps", Event{DeviceID: "d", CPU: 1, NoRPS: true, Timestamp: 1, Receipt: 2,
			Metrics: []metric.Named{{Name: "a", Value: -1e-7}, {Name: "b", Value: 1e21}, {Name: "c", Value: math.Copysign(0, -1)}}},
			[]string{"d", "d", "c", "1", "t", "1", "rt", "2", "m", "a=-1e-07,b=1e+21,c=-0"}},
		{"tags only", Event{DeviceID: "d", CPU: 1, RPS: 2, Timestamp: 1, Receipt: 2, Tags: []metric.Tag{{Key: "k", Value: "v"}}},
			[]string{"d", "d", "c", "1", "r", "2", "t", "1", "rt", "2", "g", "k=v"}},
		{"empty slices write nothing", Event{DeviceID: "d", CPU: 1, RPS: 2, Timestamp: 1, Receipt: 2, Metrics: []metric.Named{}, Tags: []metric.Tag{}},
			[]string{"d", "d", "c", "1", "r", "2", "t", "1", "rt", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Values(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Values() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	many := make([]string, metric.MaxMetricsLimit)
	manyNamed := make([]metric.Named, metric.MaxMetricsLimit)
	for i := range many {
		many[i] = "m" + strconv.Itoa(i) + "=" + strconv.Itoa(i)
		manyNamed[i] = metric.Named{Name: "m" + strconv.Itoa(i), Value: float64(i)}
	}
	tests := []struct {
		name   string
		values map[string]any
		want   Event
	}{
		{"five fields, as before named metrics",
			map[string]any{"d": "d1", "c": "50", "r": "10", "t": "1e9", "rt": "1"},
			Event{DeviceID: "d1", CPU: 50, RPS: 10, Timestamp: 1e9, Receipt: 1}},
		{"m without c and r",
			map[string]any{"d": "d1", "t": "1e9", "rt": "1", "m": "temperature=21.5,battery_v=3.71"},
			Event{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: 1e9, Receipt: 1,
				Metrics: []metric.Named{{Name: "temperature", Value: 21.5}, {Name: "battery_v", Value: 3.71}}}},
		{"m with c only",
			map[string]any{"d": "d1", "c": "5", "t": "1e9", "rt": "1", "m": "a=1"},
			Event{DeviceID: "d1", CPU: 5, NoRPS: true, Timestamp: 1e9, Receipt: 1, Metrics: []metric.Named{{Name: "a", Value: 1}}}},
		{"m with r only",
			map[string]any{"d": "d1", "r": "5", "t": "1e9", "rt": "1", "m": "a=1"},
			Event{DeviceID: "d1", RPS: 5, NoCPU: true, Timestamp: 1e9, Receipt: 1, Metrics: []metric.Named{{Name: "a", Value: 1}}}},
		{"m, c, r and g",
			map[string]any{"d": "d1", "c": "1", "r": "2", "t": "1e9", "rt": "1", "m": "a=-1.5e300", "g": "site=berlin,model=x1"},
			Event{DeviceID: "d1", CPU: 1, RPS: 2, Timestamp: 1e9, Receipt: 1, Metrics: []metric.Named{{Name: "a", Value: -1.5e300}},
				Tags: []metric.Tag{{Key: "site", Value: "berlin"}, {Key: "model", Value: "x1"}}}},
		{"g on five fields",
			map[string]any{"d": "d1", "c": "1", "r": "2", "t": "1e9", "rt": "1", "g": "k=AZaz09._:-"},
			Event{DeviceID: "d1", CPU: 1, RPS: 2, Timestamp: 1e9, Receipt: 1, Tags: []metric.Tag{{Key: "k", Value: "AZaz09._:-"}}}},
		{"MaxMetricsLimit metrics",
			map[string]any{"d": "d1", "t": "1e9", "rt": "1", "m": strings.Join(many, ",")},
			Event{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: 1e9, Receipt: 1, Metrics: manyNamed}},
		{"MaxTags tags",
			map[string]any{"d": "d1", "c": "1", "r": "2", "t": "1e9", "rt": "1", "g": "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8"},
			Event{DeviceID: "d1", CPU: 1, RPS: 2, Timestamp: 1e9, Receipt: 1, Tags: []metric.Tag{
				{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}, {Key: "d", Value: "4"},
				{Key: "e", Value: "5"}, {Key: "f", Value: "6"}, {Key: "g", Value: "7"}, {Key: "h", Value: "8"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.values)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	good := Event{DeviceID: "d1", CPU: 50, RPS: 10, Timestamp: 1e9, Receipt: 1}.Values()
	named := Event{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: 1e9, Receipt: 1,
		Metrics: []metric.Named{{Name: "a", Value: 1}}, Tags: []metric.Tag{{Key: "k", Value: "v"}}}.Values()
	// with returns the entry vals with field set to v, or removed for nil.
	with := func(vals []string, field string, v any) map[string]any {
		m := toMap(vals)
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		return m
	}
	pairs := func(format string, n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.ReplaceAll(format, "#", strconv.Itoa(i))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"no device", with(good, "d", nil)},
		{"bad device", with(good, "d", "a b")},
		{"long device", with(good, "d", string(make([]byte, 129)))},
		{"no cpu without m", with(good, "c", nil)},
		{"no rps without m", with(good, "r", nil)},
		{"cpu not a number", with(good, "c", "x")},
		{"cpu NaN", with(good, "c", "NaN")},
		{"cpu above 100", with(good, "c", "100.5")},
		{"rps negative", with(good, "r", "-1")},
		{"rps infinite", with(good, "r", "+Inf")},
		{"rps above metric.MaxRPS", with(good, "r", "1000000000.0000001")},
		{"rps 1.8e308, as an older ingest accepted", with(good, "r", "1.7976931348623157e+308")},
		{"no timestamp", with(good, "t", nil)},
		{"receipt not an integer", with(good, "rt", "1.5")},
		{"field not a string", with(good, "c", 5)},
		{"extra field", with(good, "x", "1")},

		{"extra field beside m", with(named, "x", "1")},
		{"bad cpu beside m", with(named, "c", "101")},
		{"m not a string", with(named, "m", 1)},
		{"m empty", with(named, "m", "")},
		{"m without a value", with(named, "m", "a")},
		{"m with an empty value", with(named, "m", "a=")},
		{"m with an empty name", with(named, "m", "=1")},
		{"m trailing comma", with(named, "m", "a=1,")},
		{"m bad name", with(named, "m", "Temp=1")},
		{"m name with a digit first", with(named, "m", "1a=1")},
		{"m name too long", with(named, "m", strings.Repeat("a", 65)+"=1")},
		{"m name cpu", with(named, "m", "a=1,cpu=1")},
		{"m name rps", with(named, "m", "rps=1")},
		{"m duplicate", with(named, "m", "a=1,b=2,a=3")},
		{"m value not a number", with(named, "m", "a=x")},
		{"m value twice", with(named, "m", "a=1=2")},
		{"m NaN", with(named, "m", "a=NaN")},
		{"m infinite", with(named, "m", "a=-Inf")},
		{"m overflow", with(named, "m", "a=1e999")},
		{"m past MaxMetricsLimit", with(named, "m", pairs("m#=1", metric.MaxMetricsLimit+1))},
		{"g not a string", with(named, "g", 1)},
		{"g empty", with(named, "g", "")},
		{"g without a value", with(named, "g", "site")},
		{"g empty value", with(named, "g", "site=")},
		{"g bad value", with(named, "g", "site=new york")},
		{"g value too long", with(named, "g", "site="+strings.Repeat("v", 65))},
		{"g bad key", with(named, "g", "Site=x")},
		{"g duplicate", with(named, "g", "site=a,site=b")},
		{"g past MaxTags", with(named, "g", pairs("k#=v", metric.MaxTags+1))},
		{"g alone does not excuse c", map[string]any{"d": "d1", "r": "1", "t": "1", "rt": "1", "g": "k=v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := Decode(tt.values); !errors.Is(err, ErrMalformed) || !reflect.DeepEqual(e, Event{}) {
				t.Errorf("Decode = %+v, %v; want ErrMalformed", e, err)
			}
		})
	}
}

func TestNewEventCarriesEverything(t *testing.T) {
	m := metric.Metric{DeviceID: "d", CPU: 1, RPS: 2, NoCPU: true, NoRPS: true, Timestamp: 3,
		Metrics: []metric.Named{{Name: "a", Value: 4}}, Tags: []metric.Tag{{Key: "k", Value: "v"}}}
	want := Event{DeviceID: "d", CPU: 1, RPS: 2, NoCPU: true, NoRPS: true, Timestamp: 3, Receipt: 5,
		Metrics: []metric.Named{{Name: "a", Value: 4}}, Tags: []metric.Tag{{Key: "k", Value: "v"}}}
	if got := NewEvent(m, 5); !reflect.DeepEqual(got, want) {
		t.Errorf("NewEvent = %+v, want %+v", got, want)
	}
	// Every field of Event is set from the metric or the receipt: a field
	// added to either type fails here until NewEvent copies it.
	if n := reflect.TypeFor[Event]().NumField(); n != 9 {
		t.Errorf("Event has %d fields; NewEvent copies 9", n)
	}
}
