package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

// namedEntry is an entry of named metrics only (no cpu, no rps), with tags
// when given.
func namedEntry(ms uint64, dev string, metrics []metric.Named, tags []metric.Tag) Entry {
	e := stream.Event{DeviceID: dev, NoCPU: true, NoRPS: true, Timestamp: float64(ms), Receipt: int64(ms) * 1e6,
		Metrics: metrics, Tags: tags}
	vals := e.Values()
	m := map[string]any{}
	for i := 0; i < len(vals); i += 2 {
		m[vals[i]] = vals[i+1]
	}
	return Entry{ID: fmt.Sprintf("%d-0", ms), Values: m}
}

// A named signal is judged exactly as rps and cpu are, on its own window;
// events without rps and cpu leave those signals as they were.
func TestNamedSignalMatchesNaiveReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	a := classic(t)
	states := map[string]*state.Device{}
	var temps, volts []float64
	wantAnomalies := map[string]int{}
	first := Decode([]Entry{entry(1, "s", 40, 100)})
	a.Apply(first, states, nil)
	for i := 0; i < 300; i++ {
		temp, volt := 20+r.NormFloat64(), 3.7+0.01*r.NormFloat64()
		if i%37 == 36 {
			temp += 15
		}
		ms := []metric.Named{{Name: "temperature", Value: temp}, {Name: "battery_v", Value: volt}}
		res := a.Apply(Decode([]Entry{namedEntry(uint64(i+2), "s", ms, nil)}), states, nil)
		zt, at := naive(temps, temp)
		zv, av := naive(volts, volt)
		temps, volts = append(temps, temp), append(volts, volt)
		st := states["s"]
		tn, vn := st.Named[0], st.Named[1]
		if tn.Name != "temperature" || vn.Name != "battery_v" {
			t.Fatalf("named signals %q %q, want temperature battery_v", tn.Name, vn.Name)
		}
		if math.Abs(tn.LastZ-zt) > 1e-9 || math.Abs(vn.LastZ-zv) > 1e-9 || tn.LastValue != temp {
			t.Fatalf("event %d: z = %v %v, want %v %v", i, tn.LastZ, vn.LastZ, zt, zv)
		}
		if at {
			wantAnomalies["temperature"]++
		}
		if av {
			wantAnomalies["battery_v"]++
		}
		for _, an := range res.Anomalies {
			if an.Signal != "temperature" && an.Signal != "battery_v" {
				t.Fatalf("anomaly of signal %q", an.Signal)
			}
		}
		if got := res.BySignal[SignalNamed]; got != len(res.Anomalies) {
			t.Fatalf("BySignal[named] = %d, want %d", got, len(res.Anomalies))
		}
		if (at || av) != st.Last.Anomaly {
			t.Fatalf("event %d: Last.Anomaly = %v, want %v", i, st.Last.Anomaly, at || av)
		}
	}
	st := states["s"]
	if wantAnomalies["temperature"] < 5 {
		t.Fatalf("only %d temperature anomalies: the fixture is too tame", wantAnomalies["temperature"])
	}
	if got := st.Named[0].Anomalies; got != uint64(wantAnomalies["temperature"]) {
		t.Errorf("temperature anomalies = %d, want %d", got, wantAnomalies["temperature"])
	}
	if st.RPS.Len() != 1 || st.CPU.Len() != 1 || st.Last.RPS != 100 || st.Last.CPU != 40 || st.Total != 301 {
		t.Errorf("rps/cpu changed by named-only events: windows %d %d, last %v %v, total %d",
			st.RPS.Len(), st.CPU.Len(), st.Last.RPS, st.Last.CPU, st.Total)
	}
}

type refuse struct{ signals, tags map[string]bool }

func (f refuse) TrackSignal(name string) bool    { return !f.signals[name] }
func (f refuse) TrackTag(key, value string) bool { return !f.tags[key+"="+value] }

func TestSignalLimitsCountWhatIsNotTracked(t *testing.T) {
	det := classic(t)
	p := DefaultParams(50)
	p.MaxSignals = 4 // rps, cpu and two named
	p.Fleet = refuse{signals: map[string]bool{"refused": true}}
	a := NewApplier(det.det, p)
	states := map[string]*state.Device{}
	ms := []metric.Named{{Name: "a", Value: 1}, {Name: "refused", Value: 2}, {Name: "b", Value: 3}, {Name: "c", Value: 4}}
	res := a.Apply(Decode([]Entry{namedEntry(1, "d", ms, nil), namedEntry(2, "d", ms, nil)}), states, nil)
	st := states["d"]
	var names []string
	for _, n := range st.Named {
		names = append(names, n.Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Fatalf("tracked %v, want [a b]", names)
	}
	// The second event's "refused" meets a full device before the fleet.
	want := map[string]int{DropFleetLimit: 1, DropDeviceLimit: 3}
	if !reflect.DeepEqual(res.DroppedSignals, want) || st.DroppedSignals != 4 {
		t.Fatalf("dropped %v (device %d), want %v (4)", res.DroppedSignals, st.DroppedSignals, want)
	}
	if sb := res.Signals["a"]; sb == nil || sb.Processed != 2 || sb.NewDevices != 1 || len(sb.Values) != 2 {
		t.Fatalf("signal a's batch figures %+v", sb)
	}
	if _, ok := res.Signals["c"]; ok {
		t.Fatal("a signal not tracked has batch figures")
	}
	if res.Processed != 2 {
		t.Fatalf("processed %d events, want 2: a dropped value never fails its event", res.Processed)
	}
}

func TestLatestTagsWin(t *testing.T) {
	det := classic(t)
	p := DefaultParams(50)
	p.Fleet = refuse{tags: map[string]bool{"site=mars": true}}
	a := NewApplier(det.det, p)
	states := map[string]*state.Device{}
	ms := []metric.Named{{Name: "temperature", Value: 20}}
	steps := []struct {
		tags    []metric.Tag
		want    []state.Tag
		changed bool
		dropped int
	}{
		{[]metric.Tag{{Key: "site", Value: "berlin"}, {Key: "model", Value: "x1"}}, []state.Tag{{Key: "model", Value: "x1"}, {Key: "site", Value: "berlin"}}, true, 0},
		{nil, []state.Tag{{Key: "model", Value: "x1"}, {Key: "site", Value: "berlin"}}, false, 0}, // no tags: unchanged
		{[]metric.Tag{{Key: "model", Value: "x1"}, {Key: "site", Value: "berlin"}}, []state.Tag{{Key: "model", Value: "x1"}, {Key: "site", Value: "berlin"}}, false, 0},
		{[]metric.Tag{{Key: "site", Value: "paris"}}, []state.Tag{{Key: "site", Value: "paris"}}, true, 0},
		{[]metric.Tag{{Key: "site", Value: "mars"}, {Key: "rack", Value: "r7"}}, []state.Tag{{Key: "rack", Value: "r7"}}, true, 1},
	}
	for i, s := range steps {
		res := a.Apply(Decode([]Entry{namedEntry(uint64(i+1), "d", ms, s.tags)}), states, nil)
		if got := states["d"].Tags; !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: tags %v, want %v", i, got, s.want)
		}
		if got := res.Updates[0].TagsChanged(); got != s.changed || res.DroppedTags != s.dropped {
			t.Fatalf("step %d: TagsChanged %v dropped %d, want %v %d", i, got, res.DroppedTags, s.changed, s.dropped)
		}
	}
}

// A named signal alerts as rps and cpu do, with its name on the alert.
func TestNamedSignalAlerts(t *testing.T) {
	a := classic(t)
	states := map[string]*state.Device{}
	r := rand.New(rand.NewPCG(9, 9))
	var opened []AlertChange
	for i := 0; i < 3000; i++ {
		x := 20 + r.NormFloat64()
		if i >= 2900 && i < 2920 {
			x += 30
		}
		ts := uint64(1_700_000_000 + 300*i)
		res := a.Apply(Decode([]Entry{namedEntry(ts, "d", []metric.Named{{Name: "temperature", Value: x}}, nil)}), states, nil)
		opened = append(opened, res.Alerts...)
	}
	if len(opened) == 0 || opened[0].Alert.Signal != "temperature" || opened[0].Change.String() != "opened" {
		t.Fatalf("alert changes %+v, want the temperature shift's", opened)
	}
	if open := states["d"].OpenAlerts("d"); len(open) > 0 && open[0].Signal != "temperature" {
		t.Fatalf("open alerts %+v", open)
	}
}
