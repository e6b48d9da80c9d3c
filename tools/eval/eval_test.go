package eval

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/tools/synth"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestCountsArithmetic(t *testing.T) {
	// 10 anomalies, 90 normal values: 8 caught, 2 missed, 2 false alarms.
	c := Counts{TP: 8, FN: 2, FP: 2, TN: 88}
	if !near(c.Precision(), 0.8) || !near(c.Recall(), 0.8) || !near(c.F1(), 0.8) || !near(c.FPR(), 2.0/90) {
		t.Errorf("%+v: precision %v recall %v F1 %v FPR %v", c, c.Precision(), c.Recall(), c.F1(), c.FPR())
	}
	// precision 3/4, recall 3/8, F1 = 2·(3/4)(3/8)/(3/4+3/8) = 1/2 = 6/12.
	c = Counts{TP: 3, FP: 1, FN: 5, TN: 91}
	if !near(c.Precision(), 0.75) || !near(c.Recall(), 0.375) || !near(c.F1(), 0.5) || !near(c.FPR(), 1.0/92) {
		t.Errorf("%+v: precision %v recall %v F1 %v FPR %v", c, c.Precision(), c.Recall(), c.F1(), c.FPR())
	}
	if c.Positives() != 8 || c.Negatives() != 92 {
		t.Errorf("positives %d negatives %d", c.Positives(), c.Negatives())
	}
	// Undefined rates are NaN, not 0 or 1.
	none := Counts{TN: 10, FP: 1}
	if !math.IsNaN(none.Recall()) || !math.IsNaN(none.F1()) || none.Precision() != 0 {
		t.Errorf("no anomalies: recall %v F1 %v precision %v", none.Recall(), none.F1(), none.Precision())
	}
	quiet := Counts{TN: 10, FN: 2}
	if !math.IsNaN(quiet.Precision()) || quiet.Recall() != 0 || quiet.F1() != 0 {
		t.Errorf("no flags: precision %v recall %v F1 %v", quiet.Precision(), quiet.Recall(), quiet.F1())
	}

	var a Counts
	for _, v := range []struct{ anomaly, flagged bool }{{true, true}, {true, false}, {false, true}, {false, false}, {false, false}} {
		a.Add(v.anomaly, v.flagged)
	}
	if a != (Counts{TP: 1, FN: 1, FP: 1, TN: 2}) {
		t.Errorf("Add: %+v", a)
	}
	a.Merge(Counts{TP: 1, Warmup: 3, Settling: 4, SettlingFlags: 2})
	if a.TP != 2 || a.Warmup != 3 || a.Settling != 4 || !near(a.SettlingFlagsPerShift(2), 1) {
		t.Errorf("Merge: %+v", a)
	}
}

func TestDelays(t *testing.T) {
	var d Delays
	d.Add(5, 0)
	d.Add(-4, 2)
	d.Add(4.5, 3) // big, but too late
	d.Add(3, 1)   // small shift: not in the big-shift target
	d.Add(6, -1)  // missed
	if d.Shifts != 5 || d.Detected != 4 || d.Big != 4 || d.BigWithin != 2 || d.Max != 3 {
		t.Errorf("%+v", d)
	}
	if !near(d.Mean(), 6.0/4) || d.Quantile(0.5) != 1 || d.Quantile(1) != 3 || d.Quantile(0) != 0 {
		t.Errorf("mean %v median %d max %d", d.Mean(), d.Quantile(0.5), d.Quantile(1))
	}
	var e Delays
	e.Merge(d)
	e.Merge(d)
	if e.Shifts != 10 || e.Hist[2] != 2 || e.Max != 3 || !near(e.Mean(), d.Mean()) {
		t.Errorf("merged %+v", e)
	}
	if (Delays{}).Quantile(0.5) != -1 || !math.IsNaN((Delays{}).Mean()) {
		t.Error("empty delays")
	}
}

// scripted flags the values at the given indices, whatever they are.
type scripted struct {
	flags map[int]bool
	i     int
}

func (s *scripted) Name() string { return "scripted" }
func (s *scripted) Observe(w *detector.Window, x float64) detector.Result {
	w.Push(x)
	f := s.flags[s.i]
	s.i++
	if f {
		return detector.Result{Z: 10, Anomaly: true}
	}
	return detector.Result{Z: 1}
}

func TestEvalStreamCounting(t *testing.T) {
	// 30 values, min samples 3, window 10; a spike at 5, a shift at 12.
	st := synth.Stream{Values: make([]float64, 30), Kinds: make([]synth.Kind, 30)}
	st.Kinds[5] = synth.Spike
	st.Shifts = []synth.LevelShift{{At: 12, Size: 5}}
	for i := 12; i < 12+synth.ShiftSpan; i++ {
		st.Kinds[i] = synth.Shift
	}
	p := detector.Params{WindowSize: 10, MinSamples: 3, Threshold: 2}
	// Flags: 1 (warm-up, ignored), 5 (TP), 8 (FP), 13 (shift: TP, delay 1),
	// 16 and 20 (settling: values 15..21), 25 (FP).
	d := &scripted{flags: map[int]bool{1: true, 5: true, 8: true, 13: true, 16: true, 20: true, 25: true}}
	row, err := evalStream(&st, d, p, []float64{0.5, 2, 20}, newScratch(30))
	if err != nil {
		t.Fatal(err)
	}
	c := row.Counts
	// Judged: values 3..29 = 27, minus settling 15..21 = 7 → 20 counted:
	// 4 positives (5, 12, 13, 14) and 16 negatives.
	want := Counts{TP: 2, FN: 2, FP: 2, TN: 14, Warmup: 3, Settling: 7, SettlingFlags: 2}
	if c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	if row.ByKind[synth.Shift] != (Counts{TP: 1, FN: 2}) || row.ByKind[synth.Spike] != (Counts{TP: 1}) {
		t.Errorf("by kind %+v", row.ByKind)
	}
	if d := row.Delays; d.Shifts != 1 || d.Detected != 1 || d.Sum != 1 || d.BigWithin != 1 {
		t.Errorf("delays %+v", d)
	}
	// The sweep uses |z|: everything is above 0.5, flags above 2, nothing above 20.
	if s := row.Sweep[0]; s.TP != 4 || s.FP != 16 {
		t.Errorf("sweep at 0.5: %+v", s)
	}
	if row.Sweep[1] != (Counts{TP: 2, FN: 2, FP: 2, TN: 14}) {
		t.Errorf("sweep at 2: %+v", row.Sweep[1])
	}
	if s := row.Sweep[2]; s.TP != 0 || s.FP != 0 {
		t.Errorf("sweep at 20: %+v", s)
	}
}

func smallOptions(seed uint64) Options {
	return Options{
		Seed: seed, Devices: 3, Events: 600,
		Params:     detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2},
		Detectors:  detector.Names,
		Scenarios:  synth.Scenarios(),
		Thresholds: DefaultThresholds(),
	}
}

func TestRunSweepAgreesWithFlags(t *testing.T) {
	res, err := Run(context.Background(), smallOptions(5))
	if err != nil {
		t.Fatal(err)
	}
	k := -1
	for i, th := range res.Options.Thresholds {
		if th == res.Options.Params.Threshold {
			k = i
		}
	}
	if k < 0 {
		t.Fatal("the sweep does not hold the threshold")
	}
	if len(res.Rows) != 2*2*len(synth.Scenarios()) {
		t.Fatalf("%d rows", len(res.Rows))
	}
	for _, row := range res.Rows {
		s, c := row.Sweep[k], row.Counts
		if s.TP != c.TP || s.FP != c.FP || s.TN != c.TN || s.FN != c.FN {
			t.Errorf("%s/%s/%s: sweep %+v, flags %+v", row.Scenario, row.Signal, row.Detector, s, c)
		}
		if got := c.TP + c.FP + c.TN + c.FN + c.Settling + c.Warmup; got != 3*600 {
			t.Errorf("%s/%s/%s: %d values counted", row.Scenario, row.Signal, row.Detector, got)
		}
	}
	// Workers change nothing.
	o := smallOptions(5)
	o.Workers = 1
	one, _ := Run(context.Background(), o)
	if !bytes.Equal(Report{Primary: one}.Markdown(), Report{Primary: res}.Markdown()) {
		t.Error("the result depends on the number of workers")
	}
}

func TestRenderingIsDeterministic(t *testing.T) {
	render := func(seed uint64) ([]byte, []byte) {
		a, err := Run(context.Background(), smallOptions(seed))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(context.Background(), smallOptions(seed+1))
		rep := Report{Primary: a, Holdout: b, Spread: []*Result{a, b}, Command: "cmd", PlotPath: "p.svg"}
		return rep.Markdown(), SVG(a)
	}
	md1, svg1 := render(1)
	md2, svg2 := render(1)
	if !bytes.Equal(md1, md2) || !bytes.Equal(svg1, svg2) {
		t.Fatal("same options, different output")
	}
	md3, _ := render(3)
	if bytes.Equal(md1, md3) {
		t.Fatal("different seeds, same report")
	}
	for _, want := range []string{"# Detector accuracy", "## Targets", "| locust | rps | **robust** |", "![", "FPR = FP/(FP+TN)", "over seeds 1–2"} {
		if !strings.Contains(string(md1), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.HasPrefix(string(svg1), "<svg") || !strings.HasSuffix(string(svg1), "</svg>\n") || strings.Contains(string(svg1), "NaN") {
		t.Errorf("bad SVG")
	}
}

func TestChecks(t *testing.T) {
	sc := []synth.Scenario{
		{Name: synth.Locust, Signals: []synth.Signal{{Name: "rps", SpikeRate: 0.1}, {Name: "cpu"}}},
		{Name: synth.Shifts, Signals: []synth.Signal{{Name: "temp", ShiftGap: synth.IntRange{Lo: 100, Hi: 100}}, {Name: "cpu", Drift: synth.Range{Lo: -1, Hi: 1}}}},
	}
	r := &Result{Options: Options{Params: detector.Params{Threshold: 2}, Scenarios: sc}, Rows: []Row{
		{Scenario: synth.Locust, Signal: "rps", Detector: "robust", HasAnomalies: true, Counts: Counts{TP: 97, FN: 3, FP: 4, TN: 96}},
		{Scenario: synth.Locust, Signal: "rps", Detector: "classic", HasAnomalies: true, Counts: Counts{TP: 1, FN: 99, TN: 100}},
		{Scenario: synth.Locust, Signal: "cpu", Detector: "robust", Counts: Counts{FP: 506, TN: 9494}},
		{Scenario: synth.Shifts, Signal: "temp", Detector: "robust", HasAnomalies: true, Delays: Delays{Big: 4, BigWithin: 3}},
		{Scenario: synth.Shifts, Signal: "cpu", Detector: "robust", Counts: Counts{FP: 4, TN: 96}},
	}}
	got := Checks(r, "robust")
	want := []struct {
		met   bool
		value float64
	}{{true, 0.97}, {true, 0.04}, {false, 0.0506}, {false, 0.75}, {true, 0.04}}
	if len(got) != len(want) {
		t.Fatalf("%d checks: %v", len(got), got)
	}
	for i, w := range want {
		if got[i].Met != w.met || !near(got[i].Value, w.value) {
			t.Errorf("check %d: %v, want met=%v value %v", i, got[i], w.met, w.value)
		}
	}
	if !strings.Contains(got[4].What, "drift") {
		t.Errorf("a drifting null signal is not labelled: %q", got[4].What)
	}
	if !near(GaussianTail(2), 0.04550026389635842) {
		t.Errorf("GaussianTail(2) = %v", GaussianTail(2))
	}
	sp := Spread([]*Result{r, r}, "robust")
	if len(sp) != 5 || sp[2].Met != 0 || sp[0].Met != 2 || sp[0].Seeds != 2 {
		t.Errorf("spread %+v", sp)
	}
}
