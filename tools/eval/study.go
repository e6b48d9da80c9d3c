package eval

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/tools/synth"
)

// The estimator study behind the robust detector's design: candidate
// centre/spread estimators, all scoring a value against the previous
// values only, measured on design seeds that the report does not use.
// Slow (sort-based), so it runs only when asked:
//
//	go run ./tools/cmd/pulse-eval -study

type estimator func(prev []float64) (centre, spread float64)

type candidate struct {
	name string
	est  estimator
	p    detector.Params
	buf  []float64
}

func (c *candidate) Name() string { return c.name }

func (c *candidate) Observe(w *detector.Window, x float64) detector.Result {
	c.buf = w.AppendValues(c.buf[:0])
	w.Push(x)
	if len(c.buf) < max(c.p.MinSamples, 2) {
		return detector.Result{}
	}
	m, s := c.est(c.buf)
	r := detector.Result{Mean: m, StdDev: s}
	if s > 0 {
		r.Z = (x - m) / s
		r.Anomaly = math.Abs(r.Z) > c.p.Threshold
	}
	return r
}

func sortedMedian(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func medianMAD(v []float64) (m, s float64) {
	m = sortedMedian(v)
	d := make([]float64, len(v))
	for i, x := range v {
		d[i] = math.Abs(x - m)
	}
	return m, 1.4826 * sortedMedian(d)
}

// predictiveFactor is √(1+1/n)·√(ν/(ν−2)), ν = n−1 (as in the detector).
func predictiveFactor(n int) float64 {
	fn := float64(n)
	nu := max(fn-1, 3)
	return math.Sqrt((1 + 1/fn) * nu / (nu - 2))
}

func normalPDF(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }

func plainPrev(v []float64) (float64, float64) {
	var sum float64
	for _, x := range v {
		sum += x
	}
	m := sum / float64(len(v))
	var sq float64
	for _, x := range v {
		sq += (x - m) * (x - m)
	}
	return m, math.Sqrt(sq / float64(len(v)))
}

func winsorized(k float64, pred bool) estimator {
	inside := math.Erf(k / math.Sqrt2)
	c := inside - 2*k*normalPDF(k) + k*k*(1-inside)
	return func(v []float64) (float64, float64) {
		m, s0 := medianMAD(v)
		clip := func(x float64) float64 { return min(max(x, m-k*s0), m+k*s0) }
		var sum float64
		for _, x := range v {
			sum += clip(x)
		}
		n := float64(len(v))
		mean := sum / n
		var sq float64
		for _, x := range v {
			sq += (clip(x) - mean) * (clip(x) - mean)
		}
		sd := math.Sqrt(sq / ((n - 1) * c))
		if pred {
			sd *= predictiveFactor(len(v))
		}
		return mean, sd
	}
}

func trimmed(k float64) estimator {
	inside := math.Erf(k / math.Sqrt2)
	tv := 1 - 2*k*normalPDF(k)/inside // variance of N(0,1) truncated to ±k
	return func(v []float64) (float64, float64) {
		m, s0 := medianMAD(v)
		var sum, n float64
		for _, x := range v {
			if math.Abs(x-m) <= k*s0 {
				sum += x
				n++
			}
		}
		mean := sum / n
		var sq float64
		for _, x := range v {
			if math.Abs(x-m) <= k*s0 {
				sq += (x - mean) * (x - mean)
			}
		}
		return mean, math.Sqrt(sq/((n-1)*tv)) * predictiveFactor(int(n))
	}
}

// StudyCandidates are the estimators the study compares with the
// detectors; "winsorized k=3 + pred" is what the robust detector computes.
func StudyCandidates() []struct {
	Name string
	Est  estimator
} {
	return []struct {
		Name string
		Est  estimator
	}{
		{"mean/σ of previous", plainPrev},
		{"median/MAD", medianMAD},
		{"median/MAD + pred", func(v []float64) (float64, float64) {
			m, s := medianMAD(v)
			return m, s * predictiveFactor(len(v))
		}},
		{"trimmed k=3 + pred", trimmed(3)},
		{"winsorized k=3", winsorized(3, false)},
		{"winsorized k=2 + pred", winsorized(2, true)},
		{"winsorized k=2.5 + pred", winsorized(2.5, true)},
		{"winsorized k=3 + pred", winsorized(3, true)},
		{"winsorized k=3.5 + pred", winsorized(3.5, true)},
	}
}

// StudyRow is one estimator on one seed.
type StudyRow struct {
	Estimator               string
	Seed                    uint64
	LocustRecall, LocustFPR float64 // the Locust mix, rps
	SpikesRecall, SpikesFPR float64 // spikes, temp
	PlainFPR, DriftFPR      float64 // the worst anomaly-free signal without and with trend or season
	ShiftsWithin, ShiftsBig int     // level shifts ≥ 4σ flagged within 3 values, of all
}

// Study runs the classic and robust detectors and every candidate
// estimator over the standard scenarios for each seed.
func Study(ctx context.Context, seeds []uint64, devices, events int) ([]StudyRow, error) {
	cands := StudyCandidates()
	names := []string{"classic", "robust"}
	for _, c := range cands {
		names = append(names, c.Name)
	}
	p := detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	scenarios := synth.Scenarios()
	var rows []StudyRow
	for _, seed := range seeds {
		res, err := Run(ctx, Options{
			Seed: seed, Devices: devices, Events: events, Params: p, Detectors: names,
			Scenarios: scenarios, Thresholds: []float64{p.Threshold},
			New: func(name string, p detector.Params) (detector.Detector, error) {
				for _, c := range cands {
					if c.Name == name {
						return &candidate{name: name, est: c.Est, p: p}, nil
					}
				}
				return detector.New(name, p)
			},
		})
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			get := func(sc, sig string) Row { r, _ := res.Row(sc, sig, name); return r }
			r := StudyRow{Estimator: name, Seed: seed,
				LocustRecall: get(synth.Locust, "rps").Counts.Recall(), LocustFPR: get(synth.Locust, "rps").Counts.FPR(),
				SpikesRecall: get(synth.Spikes, "temp").Counts.Recall(), SpikesFPR: get(synth.Spikes, "temp").Counts.FPR(),
			}
			for _, row := range res.Rows {
				if row.Detector != name || row.HasAnomalies {
					continue
				}
				i := slices.IndexFunc(scenarios, func(s synth.Scenario) bool { return s.Name == row.Scenario })
				if i >= 0 && hasTrend(scenarios[i], row.Signal) {
					r.DriftFPR = max(r.DriftFPR, row.Counts.FPR())
				} else {
					r.PlainFPR = max(r.PlainFPR, row.Counts.FPR())
				}
			}
			sh := get(synth.Shifts, "temp").Delays
			r.ShiftsWithin, r.ShiftsBig = sh.BigWithin, sh.Big
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// StudyMarkdown is the study as a Markdown table.
func StudyMarkdown(rows []StudyRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| estimator | seed | locust/rps recall | locust/rps FPR | spikes/temp recall | spikes/temp FPR | plain-noise FPR (max) | drift+daily FPR (max) | shifts ≥4σ within 3 |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %d/%d |\n", r.Estimator, r.Seed,
			pct(r.LocustRecall), pct(r.LocustFPR), pct(r.SpikesRecall), pct(r.SpikesFPR),
			pct(r.PlainFPR), pct(r.DriftFPR), r.ShiftsWithin, r.ShiftsBig)
	}
	return b.String()
}

func hasTrend(sc synth.Scenario, signal string) bool {
	for _, s := range sc.Signals {
		if s.Name == signal {
			return s.SeasonPeriod > 0 || s.Drift != (synth.Range{})
		}
	}
	return false
}
