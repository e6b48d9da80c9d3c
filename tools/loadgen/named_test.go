package loadgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/metric"
)

// TestTwoSignalBodiesAreUnchanged pins the bodies of workloads without
// named signals to those generated before named signals existed: the
// two-signal loads of pulse-bench must stay comparable with earlier runs.
func TestTwoSignalBodiesAreUnchanged(t *testing.T) {
	now := time.Unix(1765000000, 123456789)
	tests := []struct {
		w    Workload
		want string
	}{
		{Workload{Devices: 50, Batch: 1, Bodies: 200, Prefix: "bench", Seed: 1, Now: now},
			"b1368bbaa6f2cacae1b7cd034067c6e55929abfea01dc2fda5a6c04be0ae8658"},
		{Workload{Devices: 2000, Batch: 1000, Bodies: 6, Prefix: "mem:1", Seed: 3, Now: now},
			"c15561b375eefb69ba9fa64ad1293ee07da6348a98ff9ac405fbb47558d5cb6e"},
	}
	for _, tt := range tests {
		p := generate(t, tt.w)
		h := sha256.New()
		for _, b := range p.Bodies {
			h.Write(b)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != tt.want || p.Signals != 2 {
			t.Errorf("%+v: bodies hash to %s, %d signals; want %s, 2 signals (first body %.120s)", tt.w, got, p.Signals, tt.want, p.Bodies[0])
		}
	}
}

// event is a generated event as the contract of POST /metrics has it.
type event struct {
	DeviceID  string             `json:"device_id"`
	CPU       float64            `json:"cpu"`
	RPS       float64            `json:"rps"`
	Metrics   map[string]float64 `json:"metrics"`
	Timestamp float64            `json:"timestamp"`
}

// events decodes every body of p, strictly.
func events(t *testing.T, p *Pool) []event {
	t.Helper()
	var out []event
	for i, b := range p.Bodies {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		var evs []event
		if p.Events == 1 {
			var e event
			if err := d.Decode(&e); err != nil {
				t.Fatalf("body %d: %v\n%s", i, err, b)
			}
			evs = append(evs, e)
		} else if err := d.Decode(&evs); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if len(evs) != p.Events {
			t.Fatalf("body %d: %d events, want %d", i, len(evs), p.Events)
		}
		out = append(out, evs...)
	}
	return out
}

func TestNamedSignalsFollowTheContract(t *testing.T) {
	now := time.Now()
	base := Workload{Devices: 40, Batch: 20, Bodies: 50, Prefix: "n", Seed: 5, Now: now}
	named := base
	named.Named = NamedSignals
	p2, p6 := generate(t, base), generate(t, named)
	if p6.Signals != 6 || p6.Events != 20 {
		t.Fatalf("pool of %d events with %d signals, want 20 with 6", p6.Events, p6.Signals)
	}
	e2, e6 := events(t, p2), events(t, p6)
	perDevice := map[string][]float64{}
	for i := range e6 {
		a, b := e2[i], e6[i]
		// The same cpu, rps and time as the two-signal workload: only the
		// named values are added.
		if a.DeviceID != b.DeviceID || a.CPU != b.CPU || a.RPS != b.RPS || a.Timestamp != b.Timestamp || a.Metrics != nil {
			t.Fatalf("event %d: %+v with named signals, %+v without", i, b, a)
		}
		if len(b.Metrics) != len(NamedSignals) {
			t.Fatalf("event %d: metrics %v, want %v", i, b.Metrics, NamedSignals)
		}
		for name, v := range b.Metrics {
			if !metric.ValidName(name) || metric.Reserved(name) || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("event %d: %s = %v", i, name, v)
			}
		}
		perDevice[b.DeviceID] = append(perDevice[b.DeviceID], b.Metrics["battery_v"])
	}
	// Each device keeps its own battery level: the median is in range and
	// devices differ.
	medians := map[float64]bool{}
	for id, vs := range perDevice {
		m := median(vs)
		if m < 3.4 || m > 4.2 {
			t.Errorf("%s: median battery_v %v outside 3.5-4.1", id, m)
		}
		medians[m] = true
	}
	if len(medians) < len(perDevice)/2 {
		t.Errorf("%d distinct medians among %d devices: devices do not differ", len(medians), len(perDevice))
	}
}

func TestCalmWorkloadsHaveNoSpikes(t *testing.T) {
	w := Workload{Devices: 10, Batch: 1000, Bodies: 20, Prefix: "c", Seed: 9, Named: NamedSignals[:2], Calm: true}
	evs := events(t, generate(t, w))
	rps := map[string][]float64{}
	for _, e := range evs {
		rps[e.DeviceID] = append(rps[e.DeviceID], e.RPS)
	}
	for id, vs := range rps {
		med := median(vs)
		for _, v := range vs {
			// Noise is at most 15% of the level: 2.5 times the median is
			// over 10 noise widths away.
			if v > 2.5*med || v < 0.2*med {
				t.Fatalf("%s: rps %v against a median of %v in a calm workload", id, v, med)
			}
		}
	}
}

func TestRoundStepSpreadsEachDevicesEvents(t *testing.T) {
	now := time.Unix(1765000000, 0)
	w := Workload{Devices: 100, Batch: 100, Bodies: 48, Prefix: "r", Seed: 1, Now: now, RoundStep: 30 * time.Minute}
	evs := events(t, generate(t, w))
	last := map[string]float64{}
	for j, e := range evs {
		round, dev := j/w.Devices, j%w.Devices
		want := float64(now.Add(-time.Duration(48-round)*30*time.Minute).UnixMilli()+int64(dev)) / 1000
		if e.Timestamp != want {
			t.Fatalf("event %d (round %d, device %d): timestamp %v, want %v", j, round, dev, e.Timestamp, want)
		}
		if prev, ok := last[e.DeviceID]; ok && e.Timestamp-prev != 1800 {
			t.Fatalf("%s: events %v s apart, want 1800", e.DeviceID, e.Timestamp-prev)
		}
		last[e.DeviceID] = e.Timestamp
	}
}

func TestWorkloadRejectsInvalidNamedSignals(t *testing.T) {
	for _, w := range []Workload{
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: "x", Named: []string{"cpu"}},
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: "x", Named: []string{"Temperature"}},
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: "x", Named: []string{"temperature", "temperature"}},
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: "x", Named: []string{""}},
		{Devices: 2000, Batch: 1, Bodies: 1, Prefix: "x", RoundStep: time.Second},
	} {
		if _, err := w.Generate(); err == nil {
			t.Errorf("Generate(%+v) succeeded", w)
		}
	}
}
