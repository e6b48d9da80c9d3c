package bench

import (
	"strings"
	"testing"
)

func TestShare(t *testing.T) {
	tests := []struct {
		part, whole float64
		want        float64
		ok          bool
	}{
		{8000, 20000, 0.4, true},
		{0, 20000, 0, true},
		{8000, 0, 0, false},
		{8000, -1, 0, false},
	}
	for _, tt := range tests {
		got, ok := share(tt.part, tt.whole)
		if got != tt.want || ok != tt.ok {
			t.Errorf("share(%v, %v) = %v, %v; want %v, %v", tt.part, tt.whole, got, ok, tt.want, tt.ok)
		}
	}
}

func TestPipelineCPU(t *testing.T) {
	cpu := map[string]ProcessCPU{
		"redis": {Seconds: 4}, "ingest": {Seconds: 6}, "analyzer-1": {Seconds: 3}, "analyzer-2": {Seconds: 3}, "api": {Seconds: 0.5},
		"loadgen": {Seconds: 5},
	}
	tests := []struct {
		name string
		sc   LoadResult
		want *PipelineCPU
	}{
		{"every process but the load generator", LoadResult{CPU: cpu, Analyzed: 200000}, &PipelineCPU{
			Processes: []string{"analyzer-1", "analyzer-2", "api", "ingest", "redis"}, Seconds: 16.5, MicrosPerEvent: 82.5, LoadgenMicros: 25,
		}},
		{"nothing analyzed", LoadResult{CPU: cpu}, nil},
		{"no processes of ours (given URLs)", LoadResult{CPU: map[string]ProcessCPU{"loadgen": {Seconds: 5}}, Analyzed: 10}, nil},
		{"the HTTP ceiling is not the pipeline", LoadResult{HTTPCeiling: true, CPU: map[string]ProcessCPU{"ceiling": {Seconds: 9}}, Analyzed: 10}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pipelineCPU(&tt.sc)
			if (got == nil) != (tt.want == nil) || got != nil && (strings.Join(got.Processes, ",") != strings.Join(tt.want.Processes, ",") ||
				got.Seconds != tt.want.Seconds || got.MicrosPerEvent != tt.want.MicrosPerEvent || got.LoadgenMicros != tt.want.LoadgenMicros) {
				t.Fatalf("pipelineCPU = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// targetReport is a run with a ceiling, single, xadd and batch whose
// figures the cases change.
func targetReport(ceilingRate, single, batch, xadd float64, p99 float64, within50 float64) *Report {
	return &Report{
		Xadd: &Xadd{Shapes: []XaddShape{{Command: "XADD key * f v", Median: xadd}, {Command: "XADD of a Pulse entry (5 fields)", Median: xadd / 2}}},
		Scenarios: []*LoadResult{
			{Name: "ceiling", Kind: "closed", HTTPCeiling: true, Concurrency: 64, LoadSeconds: 60, AcceptedPerSec: ceilingRate},
			{Name: "single", Kind: "closed", Concurrency: 64, LoadSeconds: 60, AcceptedPerSec: single, AnalyzedPerSecDuringLoad: single,
				Drained: true, Latency: Latency{P99Ms: p99}, EndToEnd: &EndToEnd{Within50Ms: within50}},
			{Name: "batch", Kind: "closed", Concurrency: 4, LoadSeconds: 60, AcceptedPerSec: batch, AnalyzedPerSecDuringLoad: batch,
				Drained: true, BacklogAtEnd: 1000},
		},
	}
}

func TestEvaluateTargetsAgainstTheSameRun(t *testing.T) {
	tests := []struct {
		name string
		rep  *Report
		want map[string]*bool // target name → met; nil: not measured
	}{
		{"all met", targetReport(50000, 21000, 260000, 1000000, 9, 0.995), map[string]*bool{
			"single-event POSTs: analyzed, bounded lag":        met(true),
			"single-event POSTs: analyzed vs the HTTP ceiling": met(true),
			"single-event POSTs: ingest latency at that load":  met(true),
			"single-event POSTs: receipt → analysis":           met(true),
			"batch POSTs: analyzed, bounded lag":               met(true),
			"batch POSTs: analyzed vs Redis's pipelined XADD":  met(true),
		}},
		{"fast enough, but under 40% of a faster ceiling", targetReport(60000, 21000, 260000, 1000000, 9, 0.995), map[string]*bool{
			"single-event POSTs: analyzed, bounded lag":        met(true),
			"single-event POSTs: analyzed vs the HTTP ceiling": met(false),
		}},
		{"40% of a slow ceiling, but under 20,000", targetReport(30000, 15000, 200000, 700000, 9, 0.995), map[string]*bool{
			"single-event POSTs: analyzed, bounded lag":        met(false),
			"single-event POSTs: analyzed vs the HTTP ceiling": met(true),
			"batch POSTs: analyzed, bounded lag":               met(false),
			"batch POSTs: analyzed vs Redis's pipelined XADD":  met(true),
		}},
		{"slow answers and analyses", targetReport(50000, 21000, 200000, 1000000, 10.5, 0.98), map[string]*bool{
			"single-event POSTs: ingest latency at that load": met(false),
			"single-event POSTs: receipt → analysis":          met(false),
			"batch POSTs: analyzed vs Redis's pipelined XADD": met(false),
		}},
		{"no ceiling, no xadd", func() *Report {
			r := targetReport(50000, 21000, 260000, 1000000, 9, 0.995)
			r.Scenarios, r.Xadd = r.Scenarios[1:], nil
			return r
		}(), map[string]*bool{
			"single-event POSTs: analyzed vs the HTTP ceiling": nil,
			"batch POSTs: analyzed vs Redis's pipelined XADD":  nil,
		}},
		{"a ceiling measured with other connections is no ratio", func() *Report {
			r := targetReport(50000, 21000, 260000, 1000000, 9, 0.995)
			r.Scenarios[0].Concurrency = 32
			return r
		}(), map[string]*bool{
			"single-event POSTs: analyzed vs the HTTP ceiling": nil,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rep.evaluate()
			got := map[string]Target{}
			for _, tg := range tt.rep.Targets {
				got[tg.Name] = tg
			}
			for name, want := range tt.want {
				tg, ok := got[name]
				if !ok {
					t.Fatalf("no target %q in %v", name, tt.rep.Targets)
				}
				if verdict(tg.Met) != verdict(want) {
					t.Errorf("%s: %s (%s), want %s", name, verdict(tg.Met), tg.Measured, verdict(want))
				}
			}
		})
	}
}

func TestTargetsShowTheRatio(t *testing.T) {
	r := targetReport(50000, 21000, 260000, 1000000, 9, 0.995)
	r.evaluate()
	var ratios []string
	for _, tg := range r.Targets {
		if strings.Contains(tg.Name, " vs ") {
			ratios = append(ratios, tg.Measured)
		}
	}
	if len(ratios) != 2 || !strings.HasPrefix(ratios[0], "42.0%") || !strings.HasPrefix(ratios[1], "26.0%") {
		t.Errorf("ratios = %q, want 42.0%% of the HTTP ceiling and 26.0%% of XADD", ratios)
	}
	md := r.markdown("docs/BENCHMARKS.md", "")
	for _, want := range []string{"Pulse analyzed **42.0%**", "batches analyzed **26.0%**"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestHeadlineCPUPerAnalyzedEvent(t *testing.T) {
	r := &Report{Scenarios: []*LoadResult{
		{Name: "ceiling", Kind: "closed", HTTPCeiling: true, AcceptedPerSec: 50000, CPU: map[string]ProcessCPU{"ceiling": {Seconds: 20}, "loadgen": {Seconds: 10}}},
		{Name: "single", Kind: "closed", Analyzed: 400000, AnalyzedPerSecDuringLoad: 20000,
			CPU: map[string]ProcessCPU{"ingest": {Seconds: 20}, "redis": {Seconds: 10}, "loadgen": {Seconds: 8}}},
	}}
	r.evaluate()
	md := r.markdown("docs/BENCHMARKS.md", "")
	for _, want := range []string{"**CPU per analyzed event, whole pipeline** (ingest, redis;", "single **75.0 µs**", "single 20.0 µs", "**50,000 requests/s**", "| 75.0 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "ceiling **") {
		t.Errorf("the ceiling has no CPU per analyzed event:\n%s", md)
	}
}
