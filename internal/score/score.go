// Package score gives every analyzed value of a signal an anomaly score in
// [0, 1]: how unusual this moment is for this device and signal, in a unit
// that is comparable across devices. It is pure (no I/O, no clock, no
// allocation per value) and keeps a small fixed-size state per signal.
package score

import "math"

// Params are the scoring knobs; DefaultParams gives the defaults.
type Params struct {
	Warmup int // values seen before anything is scored
}

// DefaultParams returns the defaults.
func DefaultParams() Params { return Params{Warmup: 100} }

const nLevels = 3

// level smoothing factors: about 2, 16 and 128 values of memory.
var alphas = [nLevels]float64{1.0 / 2, 1.0 / 16, 1.0 / 128}

const (
	scaleAlpha = 1.0 / 64   // memory of the typical prediction error
	shortAlpha = 1.0 / 8    // the short average of surprise
	longAlpha  = 1.0 / 1024 // the long-run distribution of that average
	uCap       = 1e6
	logPmin    = -23.025850929940457 // ln 1e-10
)

// State is one signal's scoring state.
type State struct {
	N     uint32
	Last  float64
	Res   float64 // smallest non-zero change seen: the series' resolution
	Level [nLevels]float64
	Scale [nLevels]float64
	Short float64
	Mean  float64
	Var   float64
	UMean float64
	UVar  float64
}

// Result is a value's score and the band the score's baseline expected it in.
type Result struct {
	Score     float64
	Low, High float64
	Raw       float64 // the value's surprise before calibration
}

// Observe scores x (at time t, Unix seconds) and records it in st.
func (p Params) Observe(st *State, t, x float64) Result {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return Result{}
	}
	if st.N == 0 {
		st.Last = x
		for k := range st.Level {
			st.Level[k] = x
		}
		st.N = 1
		return Result{Low: x, High: x}
	}
	if d := math.Abs(x - st.Last); d > 0 && d < math.MaxFloat64 && (st.Res == 0 || d < st.Res) {
		st.Res = d
	}
	st.Last = x
	floor := st.Res
	if floor == 0 {
		floor = 1e-9 * math.Max(math.Abs(x), 1e-300)
	}
	var u float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for k, a := range alphas {
		e := diff(x, st.Level[k])
		s := math.Max(st.Scale[k], floor)
		if v := math.Min(e/s, uCap); v > u {
			u = v
		}
		if k == nLevels-1 {
			lo, hi = st.Level[k]-4*s, st.Level[k]+4*s
		}
		st.Level[k] = (1-a)*st.Level[k] + a*x
		st.Scale[k] = finite((1-scaleAlpha)*st.Scale[k] + scaleAlpha*e)
	}
	// Point surprise against this signal's own history of surprise.
	zu := (u - st.UMean) / math.Sqrt(st.UVar+1e-12)
	st.Short = (1-shortAlpha)*st.Short + shortAlpha*u
	zs := (st.Short - st.Mean) / math.Sqrt(st.Var+1e-12)
	n := st.N
	st.N++
	st.UVar = (1 - longAlpha) * (st.UVar + longAlpha*(u-st.UMean)*(u-st.UMean))
	st.UMean = (1-longAlpha)*st.UMean + longAlpha*u
	st.Var = (1 - longAlpha) * (st.Var + longAlpha*(st.Short-st.Mean)*(st.Short-st.Mean))
	st.Mean = (1-longAlpha)*st.Mean + longAlpha*st.Short
	if int(n) < p.Warmup {
		return Result{Low: lo, High: hi, Raw: u}
	}
	z := math.Max(zu, zs)
	return Result{Score: logScore(z), Low: lo, High: hi, Raw: u}
}

// logScore maps a z to the log of its Gaussian tail probability, scaled so
// that p = 1e-10 (and less) is 1 and p ≥ 0.5 is 0.
func logScore(z float64) float64 {
	if !(z > 0) {
		return 0
	}
	lp := logQ(z)
	return math.Min(lp/logPmin, 1)
}

// logQ is ln P(Z > z) for a standard normal Z, z ≥ 0, accurate in the far tail.
func logQ(z float64) float64 {
	if z < 30 {
		return math.Log(0.5 * math.Erfc(z/math.Sqrt2))
	}
	return -z*z/2 - math.Log(z*math.Sqrt(2*math.Pi))
}

// diff is |x − y| without overflow to +Inf.
func diff(x, y float64) float64 { return finite(math.Abs(x - y)) }

func finite(v float64) float64 {
	if v > math.MaxFloat64 {
		return math.MaxFloat64
	}
	return v
}
