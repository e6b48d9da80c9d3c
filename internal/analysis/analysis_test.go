package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/score"
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
	return NewApplier(det, DefaultParams(50))
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

func robust(t testing.TB) *Applier {
	det, err := detector.New("robust", detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	return NewApplier(det, DefaultParams(50))
}

// shifts is n events of devices in turn, one every 30 s of metric time,
// with noise and, per device, level shifts of rps (and one of cpu) that
// come and go after the scores' warm-up: alerts open and close.
func shifts(devices, n int, seed uint64) []Entry {
	r := rand.New(rand.NewPCG(seed, 9))
	var out []Entry
	for i := 0; i < n; i++ {
		k := i % devices
		j := i / devices // the device's event number
		rps := 100 + 10*float64(k) + 5*r.NormFloat64()
		cpu := 30 + 2*r.NormFloat64()
		if (j+25*k)%300 >= 250 && (j+25*k)%300 < 270 {
			rps += 200 + 20*float64(k)
		}
		if k == 0 && j >= 400 && j < 420 {
			cpu = 95
		}
		out = append(out, Entry{ID: fmt.Sprintf("%d-%d", 1_700_000_000_000+i, i%3), Values: values(stream.Event{
			DeviceID: fmt.Sprintf("dev-%d", k), CPU: cpu, RPS: max(rps, 0), Timestamp: 1_700_000_000 + 30*float64(j), Receipt: int64(i),
		})})
	}
	return out
}

func values(e stream.Event) map[string]any {
	vals := e.Values()
	m := map[string]any{}
	for i := 0; i < len(vals); i += 2 {
		m[vals[i]] = vals[i+1]
	}
	return m
}

// Exactly-once needs the results not to depend on batch boundaries: with
// the states stored (encoded) between batches and read back, as the
// analyzer does, every batching gives the same states, anomalies and
// alert changes as one batch.
func TestApplyGivesTheSameAlertsInAnyBatching(t *testing.T) {
	entries := shifts(5, 5*700, 1)
	run := func(batch int) (map[string][]byte, []state.Anomaly, []AlertChange) {
		a := robust(t)
		stored := map[string][]byte{}
		var anomalies []state.Anomaly
		var changes []AlertChange
		for i := 0; i < len(entries); i += batch {
			d := Decode(entries[i:min(i+batch, len(entries))])
			states := map[string]*state.Device{}
			for _, id := range d.DeviceIDs {
				if b, ok := stored[id]; ok {
					st, err := state.DecodeDevice(b, 50)
					if err != nil {
						t.Fatal(err)
					}
					states[id] = st
				}
			}
			res := a.Apply(d, states, nil)
			for _, u := range res.Updates {
				stored[u.DeviceID] = u.State.AppendBinary(nil)
			}
			anomalies = append(anomalies, res.Anomalies...)
			changes = append(changes, res.Alerts...)
		}
		return stored, anomalies, changes
	}
	wantStates, wantAnomalies, wantChanges := run(len(entries))
	opened, closed := 0, 0
	for _, c := range wantChanges {
		switch c.Change {
		case alert.Opened:
			opened++
		case alert.Closed:
			closed++
		}
	}
	if opened < 10 || closed < 10 {
		t.Fatalf("test data: %d alerts opened, %d closed in one batch; the data is built for at least 10 each", opened, closed)
	}
	for _, batch := range []int{1, 7, 40, 500} {
		gotStates, gotAnomalies, gotChanges := run(batch)
		if !reflect.DeepEqual(gotStates, wantStates) {
			t.Errorf("batches of %d: states differ from one batch's", batch)
		}
		if !reflect.DeepEqual(gotAnomalies, wantAnomalies) {
			t.Errorf("batches of %d: %d anomalies, one batch %d", batch, len(gotAnomalies), len(wantAnomalies))
		}
		if !reflect.DeepEqual(gotChanges, wantChanges) {
			t.Errorf("batches of %d: alert changes differ:\n%+v\nwant\n%+v", batch, gotChanges, wantChanges)
		}
	}
}

// Each value is scored and its alert stepped as the score and alert
// layers do on their own, with the metric's timestamp; the changes carry
// the episode, numbered per device, and the anomalies and Last the score.
func TestApplyScoresAndAlerts(t *testing.T) {
	entries := shifts(2, 2*400, 2)
	a := robust(t)
	states := map[string]*state.Device{}
	res := a.Apply(Decode(entries), states, nil)

	// The layers on their own, per device and signal.
	type sigState struct {
		w  *detector.Window
		sc score.State
		al alert.State
	}
	det, _ := detector.New("robust", detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	sp, ap := score.DefaultParams(), alert.DefaultParams()
	mine := map[string]*[2]sigState{}
	seq := map[string]uint64{}
	var want []AlertChange
	scores := map[string][2]float64{}
	for _, en := range entries {
		ev, _ := stream.Decode(en.Values)
		id, _ := state.ParseID(en.ID)
		m := mine[ev.DeviceID]
		if m == nil {
			m = &[2]sigState{{w: detector.NewWindow(50)}, {w: detector.NewWindow(50)}}
			mine[ev.DeviceID] = m
		}
		var sc [2]float64
		for sig, x := range [2]float64{ev.RPS, ev.CPU} {
			z := det.Observe(m[sig].w, x).Z
			r := sp.Observe(&m[sig].sc, ev.Timestamp, x)
			sc[sig] = r.Score
			ch := ap.Step(&m[sig].al, alert.Input{Time: ev.Timestamp, Value: x, Score: r.Score, Z: z, Low: r.Low, High: r.High})
			if ch == alert.None {
				continue
			}
			if ch == alert.Opened {
				seq[ev.DeviceID]++
			}
			want = append(want, AlertChange{Change: ch, Newest: seq[ev.DeviceID], Alert: state.Alert{DeviceID: ev.DeviceID, Signal: state.SignalNames[sig],
				Open: ch == alert.Opened, OpenedAt: m[sig].al.Alert.OpenedAt, ClosedAt: m[sig].al.Alert.ClosedAt, Score: m[sig].al.Alert.Score,
				Z: m[sig].al.Alert.Z, Value: m[sig].al.Alert.Value, Low: m[sig].al.Alert.Low, High: m[sig].al.Alert.High, Events: m[sig].al.Alert.Events, OpenedID: id}})
		}
		scores[ev.DeviceID] = sc
	}
	if len(want) < 4 {
		t.Fatalf("test data: %d alert changes, want some", len(want))
	}
	if len(res.Alerts) != len(want) {
		t.Fatalf("%d alert changes, want %d", len(res.Alerts), len(want))
	}
	openedBy := map[string]state.ID{} // alert id → opening stream id
	for i, got := range res.Alerts {
		w := want[i]
		if got.Change == alert.Opened {
			openedBy[got.Alert.ID()] = w.Alert.OpenedID
		}
		w.Alert.Seq = got.Alert.Seq // checked below
		w.Alert.OpenedID = openedBy[got.Alert.ID()]
		if got != w {
			t.Errorf("change %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	// Numbers count each device's alerts from 1, in order, whatever the signal.
	next := map[string]uint64{}
	for _, c := range res.Alerts {
		if c.Change == alert.Opened {
			next[c.Alert.DeviceID]++
			if c.Alert.Seq != next[c.Alert.DeviceID] || c.Newest != c.Alert.Seq {
				t.Errorf("alert %s opened as number %d (newest %d), want %d", c.Alert.ID(), c.Alert.Seq, c.Newest, next[c.Alert.DeviceID])
			}
		}
	}
	perDevice := 0
	for _, u := range res.Updates {
		perDevice += len(u.Alerts)
		st := u.State
		if got := [2]float64{st.Last.ScoreRPS, st.Last.ScoreCPU}; got != scores[u.DeviceID] {
			t.Errorf("%s: last scores %v, want %v", u.DeviceID, got, scores[u.DeviceID])
		}
		if st.AlertSeq != next[u.DeviceID] {
			t.Errorf("%s: alert sequence %d, want %d", u.DeviceID, st.AlertSeq, next[u.DeviceID])
		}
	}
	if perDevice != len(res.Alerts) || res.AlertsOpened+res.AlertsClosed != len(res.Alerts) {
		t.Errorf("per-device changes %d, opened %d + closed %d, want %d", perDevice, res.AlertsOpened, res.AlertsClosed, len(res.Alerts))
	}
	scored := 0
	for _, an := range res.Anomalies {
		if an.Score > 0 {
			scored++
		}
		if math.Signbit(an.Score) {
			t.Errorf("anomaly %+v: score −0", an)
		}
	}
	if scored == 0 {
		t.Error("no anomaly record carries a score")
	}
}

// Scoring and alerting a value allocates nothing unless an alert opens
// or closes.
func TestScoreAndAlertDoesNotAllocate(t *testing.T) {
	a := robust(t)
	entries := shifts(1, 300, 3)
	states := map[string]*state.Device{}
	res := a.Apply(Decode(entries[:250]), states, nil)
	u := res.Updates[0]
	ev := Decode(entries[250:251]).Events[0]
	allocs := testing.AllocsPerRun(1000, func() {
		ev.Timestamp += 30
		a.scoreAndAlert(&res, u, &ev, state.SignalRPS, 100, 0)
	})
	if allocs != 0 {
		t.Errorf("scoreAndAlert allocates %v times per value", allocs)
	}
}
