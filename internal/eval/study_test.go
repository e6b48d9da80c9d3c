package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/synth"
)

// The estimator study behind the robust detector's design: candidate
// centre/spread estimators, all scoring a value against the previous
// values only, measured on design seeds that the report does not use.
// Slow (sort-based), so it runs only when asked:
//
//	PULSE_EVAL_STUDY=1 go test ./internal/eval -run EstimatorStudy -v

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

func TestEstimatorStudy(t *testing.T) {
	if os.Getenv("PULSE_EVAL_STUDY") == "" {
		t.Skip("set PULSE_EVAL_STUDY=1 to run the estimator study")
	}
	cands := []struct {
		name string
		est  estimator
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
	names := []string{"classic", "robust"}
	for _, c := range cands {
		names = append(names, c.name)
	}
	p := detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	var b strings.Builder
	fmt.Fprintf(&b, "| estimator | seed | locust/rps recall | locust/rps FPR | spikes/temp recall | spikes/temp FPR | plain-noise FPR (max) | drift+daily FPR (max) | shifts ≥4σ within 3 |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, seed := range []uint64{101, 102} {
		res, err := Run(context.Background(), Options{
			Seed: seed, Devices: 20, Events: 2000, Params: p, Detectors: names,
			Scenarios: synth.Scenarios(), Thresholds: []float64{p.Threshold},
			New: func(name string, p detector.Params) (detector.Detector, error) {
				for _, c := range cands {
					if c.name == name {
						return &candidate{name: name, est: c.est, p: p}, nil
					}
				}
				return detector.New(name, p)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			get := func(sc, sig string) Row { r, _ := res.Row(sc, sig, name); return r }
			plain, drift := 0.0, 0.0
			for _, row := range res.Rows {
				if row.Detector != name || row.HasAnomalies {
					continue
				}
				if sc, _ := synth.ScenarioByName(row.Scenario); hasTrend(sc, row.Signal) {
					drift = max(drift, row.Counts.FPR())
				} else {
					plain = max(plain, row.Counts.FPR())
				}
			}
			sh := get(synth.Shifts, "temp").Delays
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %d/%d |\n", name, seed,
				pct(get(synth.Locust, "rps").Counts.Recall()), pct(get(synth.Locust, "rps").Counts.FPR()),
				pct(get(synth.Spikes, "temp").Counts.Recall()), pct(get(synth.Spikes, "temp").Counts.FPR()),
				pct(plain), pct(drift), sh.BigWithin, sh.Big)
		}
	}
	t.Log("\n" + b.String())
}

func hasTrend(sc synth.Scenario, signal string) bool {
	for _, s := range sc.Signals {
		if s.Name == signal {
			return s.SeasonPeriod > 0 || s.Drift != (synth.Range{})
		}
	}
	return false
}
