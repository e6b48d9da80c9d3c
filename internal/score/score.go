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
func DefaultParams() Params { return Params{Warmup: 150} }

const nLevels = 3

// level smoothing factors: about 2, 16 and 128 values of memory.
var alphas = [nLevels]float64{1.0 / 2, 1.0 / 16, 1.0 / 128}

const (
	scaleAlpha = 1.0 / 64   // memory of the typical prediction error
	tailAlpha  = 1.0 / 2048 // memory of the surprise distribution
	u0         = 2.0        // surprises above this (in typical errors) are exceedances
	uCap       = 1e6
	pDecades   = 10.0 // p = 10^-pDecades and below score 1
)

// State is one signal's scoring state.
type State struct {
	N     uint32
	Last  float64
	Res   float64 // smallest non-zero change seen: the series' resolution
	Level [nLevels]float64
	Scale [nLevels]float64
	Rate  float64 // share of surprises above u0
	Ex1   float64 // mean excess over u0
	Ex2   float64 // mean squared excess
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
		// Prior: Gaussian errors.
		st.Rate, st.Ex1, st.Ex2 = 0.0455, 0.42, 2*0.42*0.42
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
		s := math.Max(1.2533*st.Scale[k], floor)
		if v := math.Min(e/s, uCap); v > u {
			u = v
		}
		if k == 0 {
			lo, hi = st.Level[k]-4*s, st.Level[k]+4*s
		}
		st.Level[k] = (1-a)*st.Level[k] + a*x
		st.Scale[k] = finite((1-scaleAlpha)*st.Scale[k] + scaleAlpha*e)
	}
	lp := st.logTail(u)
	// Learn the surprise distribution.
	ex := 0.0
	if u > u0 {
		ex = 1
		y := u - u0
		w := tailAlpha / math.Max(st.Rate, tailAlpha)
		w = math.Min(w, 0.1)
		st.Ex1 += w * (y - st.Ex1)
		st.Ex2 += w * (y*y - st.Ex2)
	}
	st.Rate += tailAlpha * (ex - st.Rate)
	n := st.N
	if st.N < math.MaxUint32 {
		st.N++
	}
	if int(n) < p.Warmup {
		return Result{Low: lo, High: hi, Raw: u}
	}
	return Result{Score: math.Min(-lp/(pDecades*math.Ln10), 1), Low: lo, High: hi, Raw: u}
}

// logTail is ln P(U ≥ u) for this signal's surprise U: below u0 it is
// taken as 0 (nothing unusual); above, the exceedances follow a
// generalised Pareto distribution whose scale and shape come from the
// first two moments of past excesses (peaks over threshold).
func (st *State) logTail(u float64) float64 {
	if u <= u0 {
		return 0
	}
	m, v := st.Ex1, math.Max(st.Ex2-st.Ex1*st.Ex1, 1e-12)
	m = math.Max(m, 0.25)
	xi := 0.5 * (1 - m*m/v)
	xi = math.Min(math.Max(xi, 0), 0.45)
	beta := m * (1 - xi)
	y := u - u0
	var lt float64
	if xi < 1e-6 {
		lt = -y / beta
	} else {
		lt = -math.Log1p(xi*y/beta) / xi
	}
	return math.Log(math.Max(st.Rate, 1e-6)) + lt
}

// diff is |x − y| without overflow to +Inf.
func diff(x, y float64) float64 { return finite(math.Abs(x - y)) }

func finite(v float64) float64 {
	if v > math.MaxFloat64 {
		return math.MaxFloat64
	}
	return v
}
