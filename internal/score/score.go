// Package score gives every analyzed value of a signal an anomaly score in
// [0, 1]: how unusual this moment is for this device and signal, in a unit
// that is comparable across devices. It is pure (no I/O, no clock, no
// allocation per value) and keeps a small fixed-size state per signal
// (State, at most 575 bytes encoded).
//
// The method, in five steps (docs/detector.md has the reasons and the
// numbers):
//
//  1. Forecasts. Four simple forecasters predict each value before it is
//     seen: exponentially weighted levels with memories of about 2, 16 and
//     128 values, and a daily profile (48 half-hour buckets of the value's
//     timestamp on top of a slow level, as in additive Holt-Winters). Each
//     keeps its typical absolute error b (an exponentially weighted mean,
//     over about 64 values), floored at the series' resolution so that
//     flat and quantised stretches never divide by zero.
//  2. Surprise. The forecasters are mixed with weights from their recent
//     predictive likelihood (Laplace errors of scale b; the likelihood of
//     the last ~64 values), so the forecaster that explains the signal
//     best dominates, and the value's surprise is u = −ln Σ wₖ·e^(−|eₖ|/bₖ):
//     about |e|/b of the best forecaster, lower when another one expects
//     the value. A value that every forecaster expected scores near 0 even
//     on a steep daily ramp; one that breaks the daily pattern scores high
//     even if it continues the last values.
//  3. Calibration. Surprises above u₀ = 2 are exceedances; their rate and
//     mean excess (remembered over about 2048 values) give an exponential
//     tail, the peaks-over-threshold model of extreme value theory, made
//     heavier (a Lomax, the exponential's posterior predictive) while few
//     exceedances have been seen. The
//     tail probability p of the value's surprise on this signal is mapped
//     to score = −log₁₀(p)/10 (p = 10⁻¹⁰ or less → 1). A signal whose
//     surprises are often large (bursty traffic) needs a larger surprise for
//     the same score as a quiet one: that makes scores comparable across
//     devices.
//  4. Scheduled spikes. A surprise like one that came at about the same
//     time of day on at least 5 of the last 6 days (a nightly job) is
//     expected: its probability is at least that share of days.
//  5. Two more tests on the same history. Burst: the share of
//     exceedances among the last ~32 values against the signal's long-run
//     rate (a binomial tail). Range: a value beyond the signal's whole
//     range, by more than 5% of its width, has the probability of such
//     breaks on this signal so far. The score takes the smallest of the
//     three probabilities.
package score

import "math"

// Params are the scoring knobs.
type Params struct {
	// Warmup is how many values a signal must have had before its values
	// are scored (0 until then): the typical errors and the tail need a
	// history. 150 values is 12.5 hours at one value every 5 minutes.
	Warmup int
}

// DefaultWarmup is Params.Warmup's default.
const DefaultWarmup = 150

// DefaultParams returns the defaults.
func DefaultParams() Params { return Params{Warmup: DefaultWarmup} }

const (
	nLevels  = 3           // exponentially weighted levels
	nModels  = nLevels + 1 // the levels and the daily profile
	nBuckets = 48          // daily profile: half-hour buckets

	// errAlpha is the memory of the typical errors and of the model
	// weights: about 64 values.
	errAlpha = 1.0 / 64
	// temper scales the forecasters' log-likelihood ratios before they
	// become weights: forecast errors are correlated, so 64 values carry
	// far less evidence than 64 independent ones, and a forecaster that was
	// slightly worse lately must keep a say (a tempered posterior).
	temper = 1.0 / 8
	// seasonLevelAlpha is the memory of the daily profile's level; each
	// bucket moves by seasonGamma of its error at each visit.
	seasonLevelAlpha = 1.0 / 64
	seasonGamma      = 0.2
	// tailAlpha is the memory of the surprise distribution: about 2048
	// values, a week at one value every 5 minutes.
	tailAlpha = 1.0 / 2048
	// u0 is the exceedance threshold of the tail model, in nats: e⁻² =
	// 13.5% of values of a perfectly calibrated Laplace forecaster.
	u0 = 2.0
	// The tail's prior, which the first values' exceedances soon outweigh:
	// a quiet, well-forecast signal (exceedances 5% of the time, mean
	// excess 0.5).
	priorRate, priorExcess = 0.05, 0.5
	// minExcess keeps the tail from collapsing on a signal that has not
	// yet had an exceedance (a flat one, say).
	minExcess = 0.25
	// recentAlpha is the memory of the recent share of exceedances: about
	// 32 values. Exceedances come in clusters, so the recent count counts
	// as recentValues independent values: 0.6 of them.
	recentAlpha  = 1.0 / 32
	recentValues = 0.6 / recentAlpha
	// rangeTol: a value more than this share of the signal's range beyond
	// it breaks the range (the spatial-anomaly test of Numenta's NAB
	// detector uses the same 5%).
	rangeTol = 0.05
	// A surprise is a scheduled spike when one at least half as large
	// (and itself an exceedance) came within recurTol slots of ten
	// minutes of its time of day on at least recurMin of the last
	// recurDays days: a nightly job that may start an hour early or late
	// and may skip a day.
	recurDays = 6
	recurMin  = 5
	recurTol  = 6
	slotSecs  = 600
	slots     = 86400 / slotSecs
	u0Size    = 16 // size(u0): a peak that was an exceedance is larger
	// decades: p = 10^−decades scores 1.
	decades = 10.0
	uCap    = 1e6 // a surprise larger than this is this
)

// levelAlphas are the smoothing factors of the levels: memories of about
// 2, 16 and 128 values, a factor 8 apart.
var levelAlphas = [nLevels]float64{1.0 / 2, 1.0 / 16, 1.0 / 128}

// State is one signal's scoring state. The zero value is a signal never
// seen.
type State struct {
	N      uint32  // values seen (saturates)
	Last   float64 // the previous value
	Res    float64 // smallest non-zero change seen: the series' resolution
	Level  [nLevels]float64
	Err    [nModels]float64 // typical absolute error of each forecaster
	Loss   [nModels]float64 // recent negative log-likelihood of each forecaster
	SLevel float64          // the daily profile's level
	Season [nBuckets]float64
	Seen   uint64  // bit b: bucket b has a value
	Rate   float64 // share of surprises above u0
	Excess float64 // their mean excess over u0
	Recent float64 // share of surprises above u0 among the last ~32 values
	// The signal's range: the smallest and largest values of the RangeN
	// values seen (saturates; counted from the upgrade for a state of
	// version 1), Breaks of which broke it by more than rangeTol of its
	// width.
	Lo, Hi         float64
	RangeN, Breaks uint32
	// The scheduled-spike test's record: the day of the newest value
	// (days since the Unix epoch, UTC), that day's peak so far, and the
	// peaks of the recurDays days before it, newest first (zero for a
	// day without values). Coarse on purpose: it costs 18 bytes a signal.
	Day   uint32
	Today Peak
	Peaks [recurDays]Peak
}

// Peak is a day's largest surprise and when it came.
type Peak struct {
	Slot uint8 // the ten-minute slot of the day, UTC: 0–143
	Size uint8 // the surprise u as round(16·log₂ u), at most 255; 0: none
}

// size is u's Peak.Size: a factor 2 in u is 16 steps, a step is 4%.
func size(u float64) uint8 {
	if !(u >= 1) {
		return 0
	}
	return uint8(min(math.Round(16*math.Log2(u)), 255))
}

// Result is a value's score, its surprise before calibration and the band
// the dominant forecaster expected it in (± 3 typical errors).
type Result struct {
	Score     float64
	Surprise  float64
	Low, High float64
}

// Observe scores x, taken at t (Unix seconds), and records it in st. A NaN
// or infinite value is neither scored nor recorded.
func (p Params) Observe(st *State, t, x float64) Result {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return Result{}
	}
	if st.N == 0 {
		*st = State{N: 1, Last: x, SLevel: x, Rate: priorRate, Excess: priorExcess, Lo: x, Hi: x, RangeN: 1}
		if day, tod := dayOf(t); tod >= 0 && day >= 0 && day <= math.MaxUint32 {
			st.Day = uint32(day)
		}
		for k := range st.Level {
			st.Level[k] = x
		}
		return Result{Low: x, High: x}
	}
	if d := math.Abs(x - st.Last); d > 0 && d <= math.MaxFloat64 && (st.Res == 0 || d < st.Res) {
		st.Res = d
	}
	st.Last = x
	// The errors' floor: the resolution, or for a signal that never moved
	// a tiny fraction of its magnitude.
	floor := st.Res
	if floor == 0 {
		floor = math.Max(1e-9*math.Abs(x), math.SmallestNonzeroFloat64)
	}

	var pred, errs [nModels]float64
	copy(pred[:], st.Level[:])
	day, tod := dayOf(t)
	b := bucket(tod)
	if st.Seen&(1<<b) == 0 {
		st.Season[b] = clamp(x - st.SLevel)
		st.Seen |= 1 << b
	}
	pred[nLevels] = clamp(st.SLevel + st.Season[b])
	best, minLoss := 0, math.Inf(1)
	for k := range pred {
		errs[k] = diff(x, pred[k])
		if st.Loss[k] < minLoss {
			best, minLoss = k, st.Loss[k]
		}
	}
	bestErr := math.Max(st.Err[best], floor)
	lo, hi := clamp(pred[best]-3*bestErr), clamp(pred[best]+3*bestErr)

	// Mixture: weights e^(−temper·(Lₖ−L_min)/errAlpha) are each
	// forecaster's likelihood over the last ~1/errAlpha values relative to
	// the best, tempered.
	var mix, wsum float64
	for k, e := range errs {
		s := math.Max(st.Err[k], floor)
		z := math.Min(e/s, uCap)
		d := (st.Loss[k] - minLoss) * temper / errAlpha
		wsum += math.Exp(-d)
		mix += math.Exp(-d - z) // w·e^(−z) in one exponential
		st.Loss[k] += errAlpha * (math.Log(s) + z - st.Loss[k])
		st.Err[k] = finite((1-errAlpha)*st.Err[k] + errAlpha*e)
	}
	u := -math.Log(math.Max(mix/wsum, math.SmallestNonzeroFloat64))
	lp := max(st.logTail(u), st.observeRecurring(day, tod, u))

	for k, a := range levelAlphas {
		st.Level[k] = (1-a)*st.Level[k] + a*x // a convex combination: never overflows
	}
	st.SLevel = clamp(st.SLevel + seasonLevelAlpha*clamp(clamp(x-st.Season[b])-st.SLevel))
	st.Season[b] = clamp(st.Season[b] + seasonGamma*clamp(clamp(x-st.SLevel)-st.Season[b]))

	ex := 0.0
	if u > u0 {
		ex = 1
		// Each exceedance moves the mean excess as much as a value moves
		// the rate, so both remember about the same stretch of time.
		w := math.Min(tailAlpha/math.Max(st.Rate, tailAlpha), 0.1)
		st.Excess += w * (math.Min(u, uCap) - u0 - st.Excess)
	}
	st.Rate += tailAlpha * (ex - st.Rate)
	st.Recent += recentAlpha * (ex - st.Recent)
	lp = min(lp, st.logBurst(), st.observeRange(x, floor))

	n := st.N
	if st.N < math.MaxUint32 {
		st.N++
	}
	r := Result{Surprise: u, Low: lo, High: hi}
	if int64(n) >= int64(p.Warmup) && lp < 0 { // lp = 0 scores +0, not −0
		r.Score = math.Min(-lp/(decades*math.Ln10), 1)
	}
	return r
}

// logTail is ln P(U ≥ u) for this signal's surprise U: 0 up to u0, then
// the tail of past exceedances. Their excesses are exponential with a mean
// known only from the k exceedances the memory holds (about rate ×
// min(values, 2048)): the predictive tail of an exponential whose rate has
// the Gamma posterior of k observations with this mean excess is a Lomax,
// (1 + y/(a·excess))^(−a) with a = k + 1. With many exceedances it is the
// exponential tail e^(−y/excess); with few (a young signal, a quiet one)
// it is heavier, so a surprise far beyond the little it has seen is not
// scored as if the tail were known.
func (st *State) logTail(u float64) float64 {
	if u <= u0 {
		return 0
	}
	rate := math.Max(st.Rate, tailAlpha/16)
	a := rate*math.Min(float64(st.N), 1/tailAlpha) + 1
	return math.Log(rate) - a*math.Log1p((u-u0)/(a*math.Max(st.Excess, minExcess)))
}

// logBurst is the burst test: ln P of as many exceedances among the last
// ~32 values as there were, for a signal whose exceedances come at its
// long-run rate (the Chernoff bound of the binomial tail, −n·KL(recent ‖
// rate)); 0 when they are not more frequent than usual. A run of
// moderately surprising values, none of them extreme (a pattern that
// changes shape, a variance that grows, spikes that get denser), is as
// unusual as one extreme value.
func (st *State) logBurst() float64 {
	q, r := st.Recent, max(st.Rate, tailAlpha)
	if !(q > r) {
		return 0
	}
	kl := q * math.Log(q/r)
	if q < 1 {
		kl += (1 - q) * math.Log((1-q)/(1-r))
	}
	return -recentValues * kl
}

// observeRange is the range test: ln P that x breaks the signal's range by
// more than rangeTol of its width (0 if it does not), and records x. A
// new extreme well beyond everything the signal ever did is what point
// forecasts miss on signals that jump between levels or burst from flat:
// the jumps inflate the typical errors, so a jump to a level never seen
// looks like any other. Its probability is the signal's own rate of such
// breaks, (breaks + ½)/(values + 1) (Krichevsky–Trofimov): about 1/(2n)
// for the first break after n values, as a record of n exchangeable values
// has probability 1/n; a signal that keeps breaking its range (a trend, a
// counter) soon scores its breaks low.
func (st *State) observeRange(x, floor float64) float64 {
	lp := 0.0
	if w := rangeTol * max(diff(st.Hi, st.Lo), floor); x > st.Hi+w || x < st.Lo-w {
		lp = math.Log((float64(st.Breaks) + 0.5) / (float64(st.RangeN) + 1))
		if st.Breaks < math.MaxUint32 {
			st.Breaks++
		}
	}
	st.Lo, st.Hi = min(st.Lo, x), max(st.Hi, x)
	if st.RangeN < math.MaxUint32 {
		st.RangeN++
	}
	return lp
}

// observeRecurring is the scheduled-spike test: ln P at least of a
// surprise u at second tod of day (dayOf) that a spike at least half as
// surprising preceded at about the same time of day (±recurTol slots) on
// at least recurMin of the last recurDays days, −Inf otherwise; it records
// an exceedance u as today's peak if it is the largest. A nightly job that
// spikes a quiet signal is an extreme surprise for the tail every night,
// and the daily profile cannot forecast a one-value spike whose minute
// varies; such a spike's probability is the share of recent days that
// had it, (days + ½) / (recurDays + 1), as for the range test. Requiring
// most of the last days at the same hour keeps a one-off incident, or one
// at an hour the signal only spikes at now and then, scored by the tail
// alone; a spike more than twice as surprising as the usual one is still
// scored. A value of an earlier day than the newest (out of order) is
// neither tested nor recorded.
func (st *State) observeRecurring(day, tod int64, u float64) float64 {
	if tod < 0 || day < int64(st.Day) || day > math.MaxUint32 {
		return math.Inf(-1)
	}
	if d := uint32(day); d > st.Day {
		// Days without values since st.Day have no peak.
		n := int(min(d-st.Day, recurDays))
		copy(st.Peaks[n:], st.Peaks[:recurDays-n])
		clear(st.Peaks[:n])
		st.Peaks[n-1] = st.Today
		st.Day, st.Today = d, Peak{}
	}
	if u <= u0 { // neither tested nor a peak that counts: skip the logarithm
		return math.Inf(-1)
	}
	slot, sz := uint8(tod/slotSecs), size(u)
	days := 0
	for _, pk := range st.Peaks {
		d := max(pk.Slot, slot) - min(pk.Slot, slot)
		// At least half as large: log₂ of twice the peak is 16 steps more.
		if min(d, slots-d) <= recurTol && pk.Size > u0Size && int(pk.Size)+16 >= int(sz) {
			days++
		}
	}
	if sz > st.Today.Size {
		st.Today = Peak{Slot: slot, Size: sz}
	}
	if days < recurMin {
		return math.Inf(-1)
	}
	return math.Log((float64(days) + 0.5) / (recurDays + 1))
}

// dayOf is Unix time t's day since the epoch and its second of that day
// (UTC); tod is −1 for a time no clock gives (NaN, ±Inf, beyond ±10¹⁵ s).
func dayOf(t float64) (day int64, tod int64) {
	if !(t > -1e15 && t < 1e15) {
		return 0, -1
	}
	s := int64(math.Floor(t))
	day = s / 86400
	if s%86400 < 0 {
		day--
	}
	return day, s - day*86400
}

// bucket is the daily profile's bucket of second tod of the day (dayOf;
// bucket 0 for a time no clock gives).
func bucket(tod int64) uint {
	return uint(max(tod, 0) / (86400 / nBuckets))
}

// diff is |x − y| without overflow to +Inf.
func diff(x, y float64) float64 { return finite(math.Abs(x - y)) }

// clamp keeps a finite computation's overflow finite: the state stays
// finite on any finite input, however large.
func clamp(v float64) float64 { return max(-math.MaxFloat64, min(v, math.MaxFloat64)) }

func finite(v float64) float64 {
	if v > math.MaxFloat64 {
		return math.MaxFloat64
	}
	return v
}
