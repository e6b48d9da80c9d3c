package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

func entry(ms uint64, dev string, cpu, rps float64) Entry {
	vals := stream.Event{DeviceID: dev, CPU: cpu, RPS: rps, Timestamp: float64(ms), Receipt: int64(ms) * 1e6}.Values()
	m := map[string]any{}
	for i := 0; i < len(vals); i += 2 {
		m[vals[i]] = vals[i+1]
	}
	return Entry{ID: fmt.Sprintf("%d-0", ms), Values: m}
}

func classic(t *testing.T) *Applier {
	det, err := detector.New("classic", detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	return NewApplier(det, 50)
}

// naive is the contract's rule written out plainly: append, then compare
// with the mean and population σ of the last 50 values.
func naive(vals []float64, x float64) (float64, bool) {
	vals = append(vals, x)
	if len(vals) > 50 {
		vals = vals[len(vals)-50:]
	}
	var sum float64
	for _, v := range vals {
		sum += v
	}
	mean := sum / float64(len(vals))
	var sq float64
	for _, v := range vals {
		sq += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(sq / float64(len(vals)))
	if len(vals) < 10 || sd == 0 {
		return 0, false
	}
	z := (x - mean) / sd
	return z, math.Abs(z) > 2
}

func TestApplyMatchesNaiveReferenceInAnyBatching(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var entries []Entry
	for i := 1; i <= 3000; i++ {
		rps := 100 + r.NormFloat64()*15
		if r.IntN(6) == 0 {
			rps += 200
		}
		entries = append(entries, entry(uint64(i), fmt.Sprintf("d%d", r.IntN(7)), r.Float64()*100, math.Max(rps, 0)))
	}
	// Expected, per device, from the naive rule.
	type want struct{ total, anomalies uint64 }
	wants := map[string]*want{}
	hist := map[string][]float64{}
	histCPU := map[string][]float64{}
	var wantAnomalies int
	for _, en := range entries {
		ev, _ := stream.Decode(en.Values)
		_, a1 := naive(hist[ev.DeviceID], ev.RPS)
		_, a2 := naive(histCPU[ev.DeviceID], ev.CPU)
		hist[ev.DeviceID] = append(hist[ev.DeviceID], ev.RPS)
		histCPU[ev.DeviceID] = append(histCPU[ev.DeviceID], ev.CPU)
		w := wants[ev.DeviceID]
		if w == nil {
			w = &want{}
			wants[ev.DeviceID] = w
		}
		w.total++
		if a1 || a2 {
			w.anomalies++
			wantAnomalies++
		}
	}
	for _, batch := range []int{1, 7, 500, 3000} {
		a := classic(t)
		states := map[string]*state.Device{}
		got := 0
		for i := 0; i < len(entries); i += batch {
			res := a.Apply(Decode(entries[i:min(i+batch, len(entries))]), states, nil)
			got += res.AnomalousEvents
		}
		for dev, w := range wants {
			if s := states[dev]; s.Total != w.total || s.Anomalies != w.anomalies {
				t.Errorf("batch %d: %s total=%d anomalies=%d, want %d %d", batch, dev, s.Total, s.Anomalies, w.total, w.anomalies)
			}
		}
		if got != wantAnomalies {
			t.Errorf("batch %d: %d anomalous events, want %d", batch, got, wantAnomalies)
		}
	}
}

func TestApplySkipsWhatWasAlreadyApplied(t *testing.T) {
	a := classic(t)
	states := map[string]*state.Device{}
	first := []Entry{entry(1, "d", 1, 1), entry(2, "d", 1, 2), entry(3, "e", 1, 3)}
	a.Apply(Decode(first), states, nil)
	// A redelivery of the same entries plus one new one.
	res := a.Apply(Decode(append(first, entry(4, "d", 1, 4))), states, nil)
	if res.Duplicates != 3 || res.Processed != 1 || states["d"].Total != 3 || states["e"].Total != 1 {
		t.Fatalf("duplicates=%d processed=%d d.total=%d e.total=%d, want 3 1 3 1",
			res.Duplicates, res.Processed, states["d"].Total, states["e"].Total)
	}
	if len(res.Updates) != 1 || res.Updates[0].DeviceID != "d" || res.Updates[0].New {
		t.Fatalf("updates = %+v, want only d, not new", res.Updates)
	}
}

func TestDecodeDeadLettersWhatCannotBeApplied(t *testing.T) {
	bad := entry(2, "d", 1, 1)
	bad.Values["c"] = "not a number"
	d := Decode([]Entry{entry(1, "d", 1, 1), bad, {ID: "3-0"}, {ID: "x", Values: map[string]any{}}})
	if len(d.Events) != 1 || len(d.Acks) != 4 || len(d.Dead) != 3 {
		t.Fatalf("events=%d acks=%d dead=%d, want 1 4 3", len(d.Events), len(d.Acks), len(d.Dead))
	}
	wantReasons := []string{ReasonMalformed, ReasonMissing, ReasonMalformed}
	for i, dl := range d.Dead {
		if dl.Reason != wantReasons[i] {
			t.Errorf("dead[%d] reason %q, want %q", i, dl.Reason, wantReasons[i])
		}
	}
}

func TestApplyRecordsAnomaliesAndRecent(t *testing.T) {
	a := classic(t)
	states := map[string]*state.Device{}
	var entries []Entry
	for i := 1; i <= 20; i++ {
		entries = append(entries, entry(uint64(i), "d", 50, float64(100+i%2)))
	}
	entries = append(entries, entry(21, "d", 50, 1000))
	recent := &state.Recent{Size: 5}
	res := a.Apply(Decode(entries), states, recent)
	if len(res.Anomalies) != 1 || res.Anomalies[0].Signal != "rps" || res.Anomalies[0].Value != 1000 || res.Anomalies[0].StreamID != "21-0" {
		t.Fatalf("anomalies = %+v, want the rps spike at 21-0", res.Anomalies)
	}
	if res.BySignal["rps"] != 1 || res.BySignal["cpu"] != 0 {
		t.Errorf("by signal = %v", res.BySignal)
	}
	if len(recent.RPS) != 5 || recent.RPS[4] != 1000 || recent.IDs[0] != (state.ID{Ms: 17}) {
		t.Errorf("recent = %v %v", recent.IDs, recent.RPS)
	}
	d := states["d"]
	if !d.Last.Anomaly || d.Last.ZRPS <= 2 || d.LastSeen != 0.021 {
		t.Errorf("last = %+v seen %v", d.Last, d.LastSeen)
	}
}
