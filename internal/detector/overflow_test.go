package detector

import (
	"math"
	"testing"
)

func finiteResult(r Result) bool { return finite(r.Z) && finite(r.Mean) && finite(r.StdDev) }

// Values near float64's limit overflowed the window's sums: mean +Inf,
// σ NaN, and the api could not encode its answer. The results stay finite
// and right.
func TestMeanStdDevNearTheLimit(t *testing.T) {
	const mx = math.MaxFloat64
	tests := []struct {
		name     string
		vals     []float64
		mean, sd float64
	}{
		{"two maxima", []float64{mx, mx}, mx, 0},
		{"zero and max", []float64{0, mx}, mx / 2, mx / 2},
		{"symmetric", []float64{-mx, mx}, 0, mx},
		{"1e308 four times", []float64{1e308, 1e308, 1e308, 1e308}, 1e308, 0},
		{"one huge among small", []float64{1, 2, 3, 1.7e308}, 1.7e308 / 4, 0}, // sd checked as finite only
		{"small values stay exact", []float64{0.1, 0.2, 0.3}, (0.1 + 0.2 + 0.3) / 3, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(len(tt.vals))
			w.Reset(tt.vals)
			mean, sd := w.MeanStdDev()
			if !finite(mean) || !finite(sd) || sd < 0 {
				t.Fatalf("MeanStdDev = %v, %v; want finite", mean, sd)
			}
			if math.Abs(mean-tt.mean) > 1e-12*math.Abs(tt.mean) {
				t.Errorf("mean = %v, want %v", mean, tt.mean)
			}
			if tt.sd > 0 && math.Abs(sd-tt.sd) > 1e-12*tt.sd || tt.sd == 0 && tt.name != "one huge among small" && sd != 0 {
				t.Errorf("sd = %v, want %v", sd, tt.sd)
			}
		})
	}
}

// Scaling every value by a power of two scales the centre and the spread
// by it and leaves z and the verdict as they are; so values near the limit
// score as their scaled-down copies do.
func TestRobustNearTheLimit(t *testing.T) {
	p := Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	const scale = 0x1p-1000
	for _, tt := range []struct {
		name string
		hist []float64
		x    float64
	}{
		{"noise near 1e308, a spike", noise(30, 1e308, 1e306), 1.7e308},
		{"noise near 1e308, a dip", noise(30, 1e308, 1e306), 1e300},
		{"flat at the maximum, a drop", repeat(20, math.MaxFloat64), 0},
		{"both signs at the maximum", alternate(20, math.MaxFloat64), math.MaxFloat64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			big, small := NewRobust(p), NewRobust(p)
			wb, ws := NewWindow(p.WindowSize), NewWindow(p.WindowSize)
			for _, v := range tt.hist {
				big.Observe(wb, v)
				small.Observe(ws, v*scale)
			}
			rb, rs := big.Observe(wb, tt.x), small.Observe(ws, tt.x*scale)
			if !finiteResult(rb) {
				t.Fatalf("result %+v, want finite", rb)
			}
			if rb.Z != rs.Z || rb.Anomaly != rs.Anomaly || rb.Mean*scale != rs.Mean ||
				rb.StdDev != math.MaxFloat64 && rb.StdDev*scale != rs.StdDev {
				t.Errorf("near the limit %+v, scaled down %+v: want the same z and verdict, centre and spread scaled", rb, rs)
			}
		})
	}
	// A window from before the bound on rps: one huge value among normal
	// ones, then normal values again.
	d, w := NewRobust(p), NewWindow(p.WindowSize)
	for i, v := range noise(30, 100, 5) {
		if i == 15 {
			v = 1.7976931348623157e308
		}
		d.Observe(w, v)
	}
	for _, x := range []float64{101, 1e308, 99} {
		if r := d.Observe(w, x); !finiteResult(r) {
			t.Errorf("Observe(%v) after a huge value = %+v, want finite", x, r)
		}
	}
}

func TestClassicNearTheLimit(t *testing.T) {
	d := Classic{p: Params{WindowSize: 10, MinSamples: 2, Threshold: 2}}
	w := NewWindow(10)
	for _, x := range alternate(9, math.MaxFloat64) {
		d.Observe(w, x)
	}
	if r := d.Observe(w, -math.MaxFloat64); !finiteResult(r) {
		t.Errorf("Observe = %+v, want finite", r)
	}
}

func noise(n int, centre, spread float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = centre + spread*float64(i%7-3)/3
	}
	return out
}

func repeat(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func alternate(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
		if i%2 == 1 {
			out[i] = -v
		}
	}
	return out
}
