package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// namedReport is a run with the 2- and 6-signal loads and the
// memory-signals scenario whose figures the cases change.
func namedReport(single6, batch6 float64, bytes2, bytes6 float64) *Report {
	r := targetReport(50000, 20000, 200000, 1000000, 9, 0.995)
	r.Scenarios = append(r.Scenarios,
		&LoadResult{Name: "single-6", Kind: "closed", Concurrency: 64, LoadSeconds: 20, SignalsPerEvent: 6, AcceptedPerSec: single6,
			AnalyzedPerSecDuringLoad: single6, Drained: true, Analyzed: int64(20 * single6), CPU: map[string]ProcessCPU{"ingest": {Seconds: 12}}},
		&LoadResult{Name: "batch-6", Kind: "closed", Concurrency: 4, LoadSeconds: 20, SignalsPerEvent: 6, AcceptedPerSec: batch6,
			AnalyzedPerSecDuringLoad: batch6, Drained: true},
	)
	r.SignalMemory = &SignalMemory{Devices: 5000, EventsPerDevice: 50, WindowSize: 50, RoundSeconds: 1800, Groups: []*SignalGroup{
		{Signals: 2, Complete: true, BytesPerDevice: bytes2, StateHashBytesPerDevice: bytes2 - 100, StateValueBytes: bytes2 - 300, Sampled: 200, NewDevicesSeen: 5000},
		{Signals: 6, Complete: true, BytesPerDevice: bytes6, StateHashBytesPerDevice: bytes6 - 60, StateValueBytes: bytes6 - 420, Sampled: 200, NewDevicesSeen: 5000},
	}}
	return r
}

func targetsByName(r *Report) map[string]Target {
	out := map[string]Target{}
	for _, t := range r.Targets {
		out[t.Name] = t
	}
	return out
}

func TestSignalsPerSecondAndMemoryPerSignal(t *testing.T) {
	r := namedReport(15000, 120000, 2400, 6400)
	r.evaluate()
	single, single6 := r.scenario("single"), r.scenario("single-6")
	// Loads of reports from before named metrics carry 2 signals.
	if single.SignalsPerEvent != 2 || single.AnalyzedSignalsPerSec != 40000 || single6.AnalyzedSignalsPerSec != 90000 || single6.AcceptedSignalsPerSec != 90000 {
		t.Errorf("signals/s: single %d × → %v, single-6 %v accepted %v; want 2 → 40,000, 90,000 and 90,000",
			single.SignalsPerEvent, single.AnalyzedSignalsPerSec, single6.AnalyzedSignalsPerSec, single6.AcceptedSignalsPerSec)
	}
	if c := r.ceilingScenario(); c.AnalyzedSignalsPerSec != 0 {
		t.Errorf("the HTTP ceiling analyzes nothing, got %v signals/s", c.AnalyzedSignalsPerSec)
	}
	sm := r.SignalMemory
	// (6,400 − 2,400) / 4 = 1,000 B per signal; less 8 × 50 = 400: 600.
	if sm.BytesPerSignal != 1000 || sm.WindowValueBytes != 400 || sm.BeyondWindow != 600 || sm.StateHashBytesPerSignal != 1010 || sm.StateValueBytesPerSignal != 970 || !sm.Complete {
		t.Errorf("signal memory = %+v; want 1,000 B per signal, 600 beyond the window's 400, hashes 1,010, state 970", sm)
	}
	tg := targetsByName(r)["Redis per warm signal (named metrics)"]
	if verdict(tg.Met) != "met" || !strings.Contains(tg.Measured, "1,000 B per extra signal") || !strings.Contains(tg.Measured, ": 600 B") {
		t.Errorf("target: %s %s", verdict(tg.Met), tg.Measured)
	}
}

func TestSignalMemoryTarget(t *testing.T) {
	tests := []struct {
		name           string
		bytes2, bytes6 float64
		complete       bool
		want           *bool
	}{
		{"at the target", 2400, 6400, true, met(true)},
		{"1 B a signal over it", 2400, 6404, true, met(false)},
		{"a day's profile and more", 2400, 7000, true, met(false)},
		{"incomplete: no verdict", 2400, 6000, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := namedReport(15000, 120000, tt.bytes2, tt.bytes6)
			r.SignalMemory.Groups[1].Complete = tt.complete
			r.evaluate()
			tg := targetsByName(r)["Redis per warm signal (named metrics)"]
			if verdict(tg.Met) != verdict(tt.want) {
				t.Errorf("%s (%s), want %s", verdict(tg.Met), tg.Measured, verdict(tt.want))
			}
		})
	}
	r := &Report{}
	r.evaluate()
	if tg := targetsByName(r)["Redis per warm signal (named metrics)"]; tg.Met != nil || tg.Measured != "not run" {
		t.Errorf("without the scenario: %+v", tg)
	}
}

func TestBaselineTargets(t *testing.T) {
	// The baseline: single 7,781 analyzed/s against a ceiling of 20,287
	// (38.35%), batch 43,084 against XADD 549,451 (7.84%).
	base := &Baseline{Report: "docs/bench/before.json", Label: "before", Commit: "835105f", Loads: map[string]BaselineLoad{
		"single": {AnalyzedPerSec: 7781, Ceiling: 20287},
		"batch":  {AnalyzedPerSec: 43084, Ceiling: 549451},
	}}
	single, batch := "two signals, single-event POSTs: against the baseline", "two signals, batch POSTs: against the baseline"
	tests := []struct {
		name                         string
		ceiling, single, batch, xadd float64
		baseline                     *Baseline
		want                         map[string]*bool
		measured                     string
	}{
		{"the same shares on a slower machine", 10000, 3836, 21540, 274725, base,
			map[string]*bool{single: met(true), batch: met(true)}, "100.0%: 38.4% of the HTTP ceiling now"},
		{"5% less of the same ceiling", 20287, 7392, 40930, 549451, base,
			map[string]*bool{single: met(true), batch: met(true)}, "95.0%"},
		{"6% less", 20287, 7314, 40499, 549451, base,
			map[string]*bool{single: met(false), batch: met(false)}, "94.0%"},
		{"faster, but a faster ceiling", 30000, 9000, 43084, 549451, base,
			map[string]*bool{single: met(false), batch: met(true)}, "78.2%"},
		{"no baseline", 20287, 7781, 43084, 549451, nil,
			map[string]*bool{single: nil, batch: nil}, "no -baseline report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := targetReport(tt.ceiling, tt.single, tt.batch, tt.xadd, 9, 0.995)
			r.Baseline = tt.baseline
			r.evaluate()
			got := targetsByName(r)
			for name, want := range tt.want {
				if verdict(got[name].Met) != verdict(want) {
					t.Errorf("%s: %s (%s), want %s", name, verdict(got[name].Met), got[name].Measured, verdict(want))
				}
			}
			if !strings.HasPrefix(got[single].Measured, tt.measured) && !strings.Contains(got[single].Measured, tt.measured) {
				t.Errorf("%s measured %q, want it to show %q", single, got[single].Measured, tt.measured)
			}
		})
	}
	// Without a ceiling in the run, raw rates, said so.
	r := targetReport(20287, 7781, 43084, 549451, 9, 0.995)
	r.Scenarios, r.Baseline = r.Scenarios[1:], base
	r.evaluate()
	if tg := targetsByName(r)[single]; verdict(tg.Met) != "met" || !strings.HasPrefix(tg.Measured, "100.0%") || !strings.Contains(tg.Note, "raw rates") {
		t.Errorf("raw rates: %s %s (%s)", verdict(tg.Met), tg.Measured, tg.Note)
	}
}

func TestReadBaseline(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "before.json")
	old := targetReport(20287, 7781, 43084, 549451, 9, 0.995)
	old.Label, old.Commit, old.Time = "before", "835105f", "2026-12-06T11:33:42Z"
	if err := old.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := readBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.name() != "before, commit 835105f" || b.Loads["single"] != (BaselineLoad{7781, 20287}) || b.Loads["batch"] != (BaselineLoad{43084, 549451}) {
		t.Errorf("readBaseline = %+v", b)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := (&Report{Time: "x"}).writeJSON(empty); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{empty, filepath.Join(dir, "missing.json")} {
		if _, err := readBaseline(p); err == nil {
			t.Errorf("readBaseline(%s) succeeded", p)
		}
	}
}

// TestNamedFiguresRender renders a run with every new figure, as
// BENCHMARKS.md and the summary printed at the end show them, and
// re-renders it from its JSON (-from) the same way.
func TestNamedFiguresRender(t *testing.T) {
	r := namedReport(15000, 120000, 2400, 6400)
	r.Baseline = &Baseline{Report: "docs/bench/before.json", Label: "before", Loads: map[string]BaselineLoad{"single": {7781, 20287}, "batch": {43084, 549451}}}
	r.evaluate()
	md := r.markdown("docs/BENCHMARKS.md", "")
	for _, want := range []string{
		"**Named metrics** (6 signals per event: cpu, rps, temperature, humidity, battery_v, vibration): single-6 analyzed **15,000 events/s = 90,000 signals/s** (75.0% of single's events/s, 2.25× its signals/s)",
		"batch-6 analyzed **120,000 events/s = 720,000 signals/s** (60.0% of batch's events/s, 1.80× its signals/s)",
		"a warm signal takes **1,000 B** of Redis, 600 B beyond its window's 400 B of values",
		"### Named metrics",
		"| single | 2 | 20,000 | 40,000 | 20,000 | 40,000 | – |",
		"| single-6 | 6 | 15,000 | 90,000 | 15,000 | 90,000 | 75.0% / 2.25× | 0.00 | 6.7 |",
		"| batch-6 | 6 | 120,000 | 720,000 | 120,000 | 720,000 | 60.0% / 1.80× |",
		"### Memory per signal",
		"| Redis bytes per device | 2,400 | 6,400 |",
		"| beyond the window (target ≤ 600) | **600** |",
		"| Redis per warm signal (named metrics) | ≤ 600 B beyond the window's own values (8 B × WINDOW_SIZE) | 1,000 B per extra signal (5,000 devices × 6 vs × 2 signals, 50 events each), less the window's 400 B: 600 B",
		"| two signals, single-event POSTs: against the baseline |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	var out strings.Builder
	r.printSummary(&out)
	for _, want := range []string{"Named metrics (6 signals per event", "met       Redis per warm signal (named metrics)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	path := filepath.Join(t.TempDir(), "run.json")
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	again, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	again.evaluate()
	if md2 := again.markdown("docs/BENCHMARKS.md", ""); md2 != md {
		t.Errorf("re-rendered from JSON differs:\n%s\n---\n%s", md2, md)
	}
	// A run without the named scenarios renders as before: no new sections.
	plain := targetReport(50000, 21000, 260000, 1000000, 9, 0.995)
	plain.evaluate()
	if md := plain.markdown("docs/BENCHMARKS.md", ""); strings.Contains(md, "Named metrics") || strings.Contains(md, "Memory per signal") {
		t.Errorf("a run without named loads shows their sections:\n%s", md)
	}
}

func TestRunRendersFromAReportWithABaseline(t *testing.T) {
	dir := t.TempDir()
	before, run, md := filepath.Join(dir, "before.json"), filepath.Join(dir, "run.json"), filepath.Join(dir, "BENCHMARKS.md")
	old := targetReport(20287, 7781, 43084, 549451, 9, 0.995)
	old.Label = "before"
	if err := old.writeJSON(before); err != nil {
		t.Fatal(err)
	}
	if err := namedReport(15000, 120000, 2400, 6400).writeJSON(run); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Run(t.Context(), []string{"-from", run, "-md", md, "-baseline", before}, &out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### Memory per signal", "two signals, batch POSTs: against the baseline | ≥ 95% of the code before named metrics", "in the baseline (43,084 of 549,451/s; before)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q:\n%s", md, want, b)
		}
	}
}
