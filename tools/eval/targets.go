package eval

import (
	"fmt"
	"math"

	"github.com/pulse-iot/pulse/tools/synth"
)

// The project's accuracy targets for the default detector.
const (
	MinRecall      = 0.97  // on every anomaly-carrying signal of the locust and spikes scenarios
	MaxFPR         = 0.04  // idem
	NullAllowance  = 0.005 // on anomaly-free signals: the Gaussian tail rate plus this
	ShiftScenario  = synth.Shifts
	TargetDetector = "robust"
)

// TargetScenarios are the scenarios the recall and FPR targets apply to.
var TargetScenarios = []string{synth.Locust, synth.Spikes}

// GaussianTail is P(|Z| > t) for a standard normal Z: the share of Gaussian
// noise a perfect t·σ rule flags (4.55% at t = 2).
func GaussianTail(t float64) float64 { return math.Erfc(t / math.Sqrt2) }

// Check is one target measured on one row.
type Check struct {
	What   string  // the target, e.g. "locust/rps recall ≥ 97%"
	Value  float64 // what was measured (a fraction)
	Bound  float64
	AtMost bool // the value must be ≤ Bound (else ≥)
	Met    bool
}

func (c Check) String() string {
	verdict := "met"
	if !c.Met {
		verdict = "NOT MET"
	}
	return fmt.Sprintf("%s: %s (%s)", c.What, pct(c.Value), verdict)
}

func check(what string, v, bound float64, atMost bool) Check {
	met := v >= bound
	if atMost {
		met = v <= bound
	}
	if math.IsNaN(v) {
		met = false
	}
	return Check{What: what, Value: v, Bound: bound, AtMost: atMost, Met: met}
}

// Checks measures the targets on r for detector det:
//   - recall ≥ 97% and FPR ≤ 4% on every anomaly-carrying signal of the
//     TargetScenarios;
//   - FPR ≤ GaussianTail(threshold) + 0.5 point on every anomaly-free signal
//     of every scenario;
//   - every level shift of at least 4σ in the shifts scenario flagged with a
//     delay below DelayTarget.
func Checks(r *Result, det string) []Check {
	var out []Check
	target := map[string]bool{}
	for _, s := range TargetScenarios {
		target[s] = true
	}
	nullBound := GaussianTail(r.Options.Params.Threshold) + NullAllowance
	for _, row := range r.Rows {
		if row.Detector != det {
			continue
		}
		name := row.Scenario + "/" + row.Signal
		switch {
		case row.HasAnomalies && target[row.Scenario]:
			out = append(out,
				check(name+" recall ≥ "+pct(MinRecall), row.Counts.Recall(), MinRecall, false),
				check(name+" FPR ≤ "+pct(MaxFPR), row.Counts.FPR(), MaxFPR, true))
		case !row.HasAnomalies:
			kind := "no anomalies"
			if sig, ok := r.signal(row.Scenario, row.Signal); ok && (sig.SeasonPeriod > 0 || sig.Drift != (synth.Range{})) {
				kind = "no anomalies; drift, daily cycle"
			}
			out = append(out, check(name+" ("+kind+") FPR ≤ "+pct(nullBound), row.Counts.FPR(), nullBound, true))
		}
		if row.Scenario == ShiftScenario && row.Delays.Big > 0 {
			out = append(out, check(fmt.Sprintf("%s shifts ≥ %gσ flagged within %d values", name, BigShift, DelayTarget),
				ratio(row.Delays.BigWithin, row.Delays.Big), 1, false))
		}
	}
	return out
}

// pct formats a fraction as a percentage with two decimals ("–" for NaN).
func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

// signal returns the description of a scenario's signal.
func (r *Result) signal(scenario, signal string) (synth.Signal, bool) {
	for _, sc := range r.Options.Scenarios {
		if sc.Name != scenario {
			continue
		}
		for _, s := range sc.Signals {
			if s.Name == signal {
				return s, true
			}
		}
	}
	return synth.Signal{}, false
}

// SeedSpread is one target measured over several seeds.
type SeedSpread struct {
	What     string
	Min, Max float64
	Met      int // seeds on which the target is met
	Seeds    int
}

// Spread gathers the targets of det over results (one per seed). Every
// result must have the same scenarios and parameters, so that Checks
// returns the same targets in the same order.
func Spread(results []*Result, det string) []SeedSpread {
	var out []SeedSpread
	for i, r := range results {
		for j, c := range Checks(r, det) {
			if i == 0 {
				out = append(out, SeedSpread{What: c.What, Min: c.Value, Max: c.Value})
			}
			if j >= len(out) || out[j].What != c.What {
				continue
			}
			s := &out[j]
			s.Min, s.Max = math.Min(s.Min, c.Value), math.Max(s.Max, c.Value)
			s.Seeds++
			if c.Met {
				s.Met++
			}
		}
	}
	return out
}
