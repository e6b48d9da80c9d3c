package score

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// series is a generator of values at 5-minute steps.
type series func(i int, rng *rand.Rand) float64

func observeAll(p Params, gen series, n int, seed uint64) []Result {
	rng := rand.New(rand.NewPCG(seed, 7))
	var st State
	out := make([]Result, n)
	for i := range out {
		out[i] = p.Observe(&st, float64(1.7e9+300*i), gen(i, rng))
	}
	return out
}

func maxScore(rs []Result, from, to int) float64 {
	m := 0.0
	for _, r := range rs[from:to] {
		m = max(m, r.Score)
	}
	return m
}

func TestScoreBehaviour(t *testing.T) {
	p := DefaultParams()
	noise := func(i int, rng *rand.Rand) float64 { return 50 + 2*rng.NormFloat64() }
	daily := func(i int, rng *rand.Rand) float64 {
		return 50 + 20*math.Sin(2*math.Pi*float64(i)/288) + 0.5*rng.NormFloat64()
	}
	tests := []struct {
		name string
		gen  series
		n    int
		// the highest score in [quietFrom, quietTo) must stay below quietMax,
		// the highest in [hotFrom, hotTo) reach at least hotMin.
		quietFrom, quietTo int
		quietMax           float64
		hotFrom, hotTo     int
		hotMin             float64
	}{
		{"Gaussian noise stays low", noise, 4000, 150, 4000, 0.5, 0, 0, 0},
		{"a 10σ spike scores high", func(i int, rng *rand.Rand) float64 {
			if i == 2000 {
				return 70
			}
			return noise(i, rng)
		}, 2500, 150, 2000, 0.5, 2000, 2001, 0.6},
		{"a level shift of 6σ scores high at once", func(i int, rng *rand.Rand) float64 {
			if i >= 2000 {
				return 12 + noise(i, rng)
			}
			return noise(i, rng)
		}, 2500, 150, 2000, 0.5, 2000, 2003, 0.4},
		{"a run of moderately unusual values scores high: 32 values alternate 2.5σ above and below", func(i int, rng *rand.Rand) float64 {
			if i >= 2000 && i < 2032 {
				return 50 + float64(10*(i%2)-5) + 0.5*rng.NormFloat64()
			}
			return noise(i, rng)
		}, 2032, 150, 2000, 0.5, 2000, 2032, 0.33},
		{"on a signal that jumps between two levels, a level never seen scores high", func(i int, rng *rand.Rand) float64 {
			v := 10 + rng.NormFloat64()
			if rng.IntN(8) == 0 {
				v += 100
			}
			if i == 20000 {
				v = 140
			}
			return v
		}, 20001, 150, 20000, 0.33, 20000, 20001, 0.33},
		{"a daily cycle is learnt: its ramps are not unusual", daily, 288 * 8, 288 * 2, 288 * 8, 0.3, 0, 0, 0},
		{"warm-up: nothing is scored", func(i int, rng *rand.Rand) float64 { return float64(i * i) }, p.Warmup, 0, p.Warmup, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				rs := observeAll(p, tt.gen, tt.n, seed)
				if tt.quietTo > tt.quietFrom {
					if m := maxScore(rs, tt.quietFrom, tt.quietTo); m > tt.quietMax || (tt.quietMax > 0 && m == tt.quietMax) {
						t.Errorf("seed %d: highest score %.3f in [%d, %d), want below %g", seed, m, tt.quietFrom, tt.quietTo, tt.quietMax)
					}
				}
				if tt.hotTo > tt.hotFrom {
					if m := maxScore(rs, tt.hotFrom, tt.hotTo); m < tt.hotMin {
						t.Errorf("seed %d: highest score %.3f in [%d, %d), want at least %g", seed, m, tt.hotFrom, tt.hotTo, tt.hotMin)
					}
				}
			}
		})
	}
}

// nightly is a quiet signal (10 ± 0.2) that a job spikes to 30 once a
// night, at 03:00 UTC give or take half an hour; at 5-minute steps from
// 1.7e9 (22:13 UTC).
func nightly(i int, rng *rand.Rand) float64 {
	t := int64(1.7e9) + 300*int64(i)
	day, tod := t/86400, t%86400
	if tod/300 == (3*3600+(day*7%5-2)*900)/300 {
		return 30
	}
	return 10 + 0.2*rng.NormFloat64()
}

// A spike that comes at the same time every night is a scheduled job: it
// scores high on the first nights, not once it has come on 5 of the last
// 6; the same spike at another hour, or a much larger one at that hour,
// still scores high.
func TestNightlySpikeIsLearnt(t *testing.T) {
	p := DefaultParams()
	const days = 12
	const t0 = int64(1.7e9)
	at := func(day, tod int64) int { return int(((t0/86400+day)*86400 + tod - t0) / 300) }
	for seed := uint64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var st State
		var night [days]float64 // each night's highest score
		var other, larger float64
		for i := range at(days, 0) {
			x := nightly(i, rng)
			switch i {
			case at(9, 15*3600): // the same spike at 15:00
				x = 30
			case at(11, 3*3600+300): // three times as large, at the job's time
				x = 70
			}
			r := p.Observe(&st, 1.7e9+300*float64(i), x)
			d := (t0+300*int64(i))/86400 - t0/86400
			switch {
			case i == at(9, 15*3600):
				other = r.Score
			case i == at(11, 3*3600+300):
				larger = r.Score
			case x == 30:
				night[d] = max(night[d], r.Score)
			}
		}
		for d := 2; d <= 5; d++ { // after the warm-up, before 5 earlier nights
			if night[d] < 0.5 {
				t.Errorf("seed %d: night %d's spike scores %.3f, want at least 0.5 (not yet a pattern)", seed, d, night[d])
			}
		}
		// The first nights' surprises were smaller (a young signal's typical
		// errors are young too): from night 8 on, five earlier ones count.
		for d := 8; d < 11; d++ {
			if night[d] >= 0.1 {
				t.Errorf("seed %d: night %d's spike scores %.3f, want below 0.1 (a nightly job)", seed, d, night[d])
			}
		}
		if other < 0.5 || larger < 0.5 {
			t.Errorf("seed %d: the spike at 15:00 scores %.3f, the larger one at the job's time %.3f; want both at least 0.5", seed, other, larger)
		}
	}
}

func observeAt(st *State, t, u float64) float64 {
	day, tod := dayOf(t)
	return st.observeRecurring(day, tod, u)
}

// The record counts calendar days: days without values have no peak, and
// a value of an earlier day (out of order) changes nothing.
func TestRecurringCountsCalendarDays(t *testing.T) {
	const day0 = 20000 * 86400 // midnight UTC
	at := func(day int, hour float64) float64 { return day0 + float64(day)*86400 + hour*3600 }
	nights := func(days ...int) State {
		var st State
		st.Day = 20000
		for _, d := range days {
			observeAt(&st, at(d, 3), 10)
		}
		return st
	}
	tests := []struct {
		name  string
		st    State
		t, u  float64
		wantP float64 // 0: not a scheduled spike
	}{
		{"six nights in a row", nights(1, 2, 3, 4, 5, 6), at(7, 3.5), 10, 6.5 / 7},
		{"five of six", nights(1, 2, 4, 5, 6), at(7, 2.5), 10, 5.5 / 7},
		{"four of six", nights(1, 2, 5, 6), at(7, 3), 10, 0},
		{"an hour and a half off", nights(1, 2, 3, 4, 5, 6), at(7, 4.5), 10, 0},
		{"across midnight", func() State {
			var st State
			for d := 1; d <= 7; d++ {
				observeAt(&st, at(d, 23.75), 10)
			}
			return st
		}(), at(8, 0.25), 10, 6.5 / 7},
		{"more than twice as surprising", nights(1, 2, 3, 4, 5, 6), at(7, 3), 21, 0},
		{"not an exceedance", nights(1, 2, 3, 4, 5, 6), at(7, 3), u0, 0},
		{"three days without values since", nights(1, 2, 3, 4, 5, 6), at(10, 3), 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			got := observeAt(&st, tt.t, tt.u)
			want := math.Inf(-1)
			if tt.wantP > 0 {
				want = math.Log(tt.wantP)
			}
			if math.Abs(got-want) > 1e-12 && got != want {
				t.Errorf("ln P = %v, want %v", got, want)
			}
		})
	}
	st := nights(1, 2, 3, 4, 5, 6, 7)
	before := st
	if lp := observeAt(&st, at(5, 3), 10); !math.IsInf(lp, -1) || st != before {
		t.Errorf("a value of an earlier day: ln P %v, record %+v, want −Inf and %+v", lp, st, before)
	}
}

func TestPeakSize(t *testing.T) {
	for _, tt := range []struct {
		u    float64
		want uint8
	}{{math.NaN(), 0}, {0.5, 0}, {1, 0}, {2, 16}, {2.1, 17}, {4, 32}, {10, 53}, {20, 69}, {6e4, 254}, {1e6, 255}, {math.Inf(1), 255}} {
		if got := size(tt.u); got != tt.want {
			t.Errorf("size(%v) = %d, want %d", tt.u, got, tt.want)
		}
	}
	if size(u0) != u0Size {
		t.Errorf("size(u0) = %d, u0Size %d", size(u0), u0Size)
	}
}

// A score says how unusual a value is for its signal, whatever the unit:
// the same series in another unit and offset scores the same.
// On Gaussian noise the score is calibrated: values at or above the
// default alert threshold (0.34, a tail probability of about 4·10⁻⁴) are
// rare.
func TestNoiseRarelyReachesTheAlertThreshold(t *testing.T) {
	p := DefaultParams()
	n := 0
	for seed := uint64(1); seed <= 5; seed++ {
		for _, r := range observeAll(p, func(i int, rng *rand.Rand) float64 { return 50 + 2*rng.NormFloat64() }, 20000, seed) {
			if r.Score >= 0.34 {
				n++
			}
		}
	}
	if n > 40 { // 4 in 10⁴
		t.Errorf("%d of 100000 Gaussian values score at least 0.34", n)
	}
}

// The tail is the exponential's posterior predictive: close to e^(−y/excess)
// once the memory holds many exceedances, heavier while it holds few.
func TestTailHeavierWithFewExceedances(t *testing.T) {
	exp := func(rate, excess, u float64) float64 { return math.Log(rate) - (u-u0)/excess }
	for _, tc := range []struct {
		name           string
		n              uint32
		rate, excess   float64
		u              float64
		minGap, maxGap float64 // logTail − exponential, in nats
	}{
		{"at the threshold", 100000, 0.05, 0.5, u0, 0, 0},
		{"below it", 100000, 0.05, 0.5, 1, 0, 0}, // not an exceedance: ln 1
		{"warm, 103 exceedances", 100000, 0.05, 0.5, 6, 0.25, 0.35},
		{"warm, far out", 100000, 0.05, 0.5, 12, 1.5, 2},
		{"young, 11 exceedances", 200, 0.05, 0.5, 6, 1.8, 2.2},
		{"quiet, 3 exceedances", 100000, 0.001, 0.5, 6, 3.9, 4.3},
	} {
		st := State{N: tc.n, Rate: tc.rate, Excess: tc.excess}
		got := st.logTail(tc.u)
		want := 0.0
		if tc.u > u0 {
			want = exp(tc.rate, tc.excess, tc.u)
		}
		if gap := got - want; gap < tc.minGap || gap > tc.maxGap {
			t.Errorf("%s: ln P = %.3f, exponential %.3f: %.3f more, want %.1f–%.1f", tc.name, got, want, gap, tc.minGap, tc.maxGap)
		}
	}
}

// An ordinary value after the warm-up scores +0, never −0 (which JSON
// writes as "-0").
func TestScoreIsNeverNegativeZero(t *testing.T) {
	p := DefaultParams()
	ordinary := 0
	for i, r := range observeAll(p, func(i int, rng *rand.Rand) float64 { return 50 + 2*rng.NormFloat64() }, 1000, 1) {
		if math.Signbit(r.Score) {
			t.Fatalf("value %d scores %v", i, r.Score)
		}
		if i >= p.Warmup && r.Score == 0 {
			ordinary++
		}
	}
	if ordinary == 0 {
		t.Fatal("test data: no value after the warm-up scored 0")
	}
}

func TestScoreIgnoresUnits(t *testing.T) {
	p := DefaultParams()
	gen := func(i int, rng *rand.Rand) float64 {
		v := 10 + rng.NormFloat64()
		if i%500 == 499 {
			v += 8
		}
		return v
	}
	a := observeAll(p, gen, 3000, 5)
	b := observeAll(p, func(i int, rng *rand.Rand) float64 { return 1e6 + 4096*gen(i, rng) }, 3000, 5)
	for i := range a {
		if math.Abs(a[i].Score-b[i].Score) > 1e-6 {
			t.Fatalf("value %d: score %v in one unit, %v in another", i, a[i].Score, b[i].Score)
		}
	}
}

// Flat, quantised and huge series never give an infinite or NaN score,
// and every score is in [0, 1].
func TestScoreAlwaysFinite(t *testing.T) {
	p := Params{Warmup: 10}
	tests := []struct {
		name string
		gen  series
	}{
		{"flat, then one step", func(i int, _ *rand.Rand) float64 {
			if i == 500 {
				return 1
			}
			return 0
		}},
		{"flat, then a huge jump", func(i int, _ *rand.Rand) float64 {
			if i >= 500 {
				return 1e300
			}
			return 0
		}},
		{"quantised with long flat stretches", func(i int, rng *rand.Rand) float64 {
			if (i/200)%2 == 0 {
				return 3
			}
			return float64(rng.IntN(4))
		}},
		{"tiny steps", func(i int, rng *rand.Rand) float64 { return 1 + float64(rng.IntN(2))*1e-300 }},
		{"huge alternating magnitudes", func(i int, rng *rand.Rand) float64 {
			return math.MaxFloat64 * float64(1-2*(i%2)) * rng.Float64()
		}},
		{"denormals", func(i int, rng *rand.Rand) float64 { return math.SmallestNonzeroFloat64 * float64(rng.IntN(5)) }},
		{"random bits", func(i int, rng *rand.Rand) float64 {
			for {
				if v := math.Float64frombits(rng.Uint64()); !math.IsNaN(v) && !math.IsInf(v, 0) {
					return v
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range observeAll(p, tt.gen, 2000, 3) {
				if !(r.Score >= 0 && r.Score <= 1) || math.IsNaN(r.Surprise) || math.IsInf(r.Low, 0) || math.IsInf(r.High, 0) || math.IsNaN(r.Low) || math.IsNaN(r.High) {
					t.Fatalf("result %+v", r)
				}
			}
		})
	}
}

func TestFlatThenStep(t *testing.T) {
	// A signal flat for a long time that moves by its usual resolution is
	// not alarming; a move of a hundred steps is.
	p := DefaultParams()
	gen := func(step float64) series {
		return func(i int, rng *rand.Rand) float64 {
			switch {
			case i < 1000:
				return float64(rng.IntN(3)) // resolution 1
			case i < 1500:
				return 1
			case i == 1500:
				return 1 + step
			}
			return 1
		}
	}
	if s := observeAll(p, gen(1), 1600, 1)[1500].Score; s > 0.2 {
		t.Errorf("one step of the resolution after a flat stretch scores %.3f", s)
	}
	if s := observeAll(p, gen(100), 1600, 1)[1500].Score; s < 0.6 {
		t.Errorf("a hundred steps after a flat stretch scores %.3f", s)
	}
}

func TestNonFiniteValuesIgnored(t *testing.T) {
	p := DefaultParams()
	var st State
	for i := 0; i < 300; i++ {
		p.Observe(&st, float64(i), float64(i%7))
	}
	before := st
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if r := p.Observe(&st, 1, x); r != (Result{}) || st != before {
			t.Errorf("Observe(%v) = %+v and changed the state", x, r)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	p := DefaultParams()
	rng := rand.New(rand.NewPCG(1, 2))
	var a State
	if b := a.AppendBinary(nil); len(b) != fixedSize {
		t.Fatalf("empty state: %d bytes", len(b))
	}
	for i := 0; i < 5000; i++ {
		t0 := float64(1.7e9 + 300*i)
		x := 100 + 10*math.Sin(float64(i)/40) + rng.NormFloat64()
		if i%1000 == 0 {
			enc := a.AppendBinary(nil)
			if len(enc) != a.BinarySize() || len(enc) > MaxBinarySize {
				t.Fatalf("encoded %d bytes, BinarySize %d, max %d", len(enc), a.BinarySize(), MaxBinarySize)
			}
			b, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if b != a {
				t.Fatalf("value %d: decoded %+v, want %+v", i, b, a)
			}
			// Both go on identically.
			for j := 0; j < 50; j++ {
				ra, rb := p.Observe(&a, t0+float64(j), x+float64(j)), p.Observe(&b, t0+float64(j), x+float64(j))
				if ra != rb {
					t.Fatalf("decoded state scores %+v, original %+v", rb, ra)
				}
			}
		}
		p.Observe(&a, t0, x)
	}
	if n := a.BinarySize(); n != MaxBinarySize {
		t.Errorf("a state with a full daily profile takes %d bytes, want %d", n, MaxBinarySize)
	}
}

func TestDecodeRejects(t *testing.T) {
	var st State
	p := DefaultParams()
	for i := 0; i < 300; i++ {
		p.Observe(&st, float64(300*i), float64(i%5))
	}
	good := st.AppendBinary(nil)
	corrupt := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	nan := math.Float64bits(math.NaN())
	tests := map[string][]byte{
		"empty":           nil,
		"short":           good[:fixedSize-1],
		"truncated":       good[:len(good)-1],
		"trailing":        append(bytes.Clone(good), 0),
		"version":         corrupt(func(b []byte) { b[0] = 4 }),
		"NaN":             corrupt(func(b []byte) { putU64(b[5:], nan) }),
		"negative error":  corrupt(func(b []byte) { putU64(b[5+5*8:], math.Float64bits(-1)) }),
		"rate above 1":    corrupt(func(b []byte) { putU64(b[5+14*8:], math.Float64bits(2)) }),
		"bucket mask":     corrupt(func(b []byte) { b[5+16*8+v2Size+v3Size+7] = 0x80 }),
		"peak slot":       corrupt(func(b []byte) { b[5+16*8+v2Size+4+2] = slots }),
		"recent above 1":  corrupt(func(b []byte) { putU64(b[5+16*8:], math.Float64bits(1.5)) }),
		"recent NaN":      corrupt(func(b []byte) { putU64(b[5+16*8:], nan) }),
		"range":           corrupt(func(b []byte) { putU64(b[5+17*8:], math.Float64bits(st.Last+1)) }),
		"range NaN":       corrupt(func(b []byte) { putU64(b[5+18*8:], nan) }),
		"breaks":          corrupt(func(b []byte) { b[5+19*8+7] = 0xff }),
		"version 1 short": v1(good)[:fixedSize-v2Size-v3Size-1],
		"version 2 short": v2(good)[:fixedSize-v3Size-1],
	}
	for name, b := range tests {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
	}
}

// v1 is enc (this version) as version 1 wrote it: without the range and
// the peaks.
func v1(enc []byte) []byte {
	out := append([]byte{versionV1}, enc[1:5+16*8]...)
	return append(out, enc[5+16*8+v2Size+v3Size:]...)
}

// v2 is enc as version 2 wrote it: without the peaks.
func v2(enc []byte) []byte {
	out := append([]byte{versionV2}, enc[1:5+16*8+v2Size]...)
	return append(out, enc[5+16*8+v2Size+v3Size:]...)
}

// A state written by version 1 decodes with everything it held, and the
// range of its last value; the range is learnt from there on, without a
// burst of high scores.
func TestDecodeVersion1(t *testing.T) {
	p := DefaultParams()
	gen := func(i int, rng *rand.Rand) float64 { return 50 + 2*rng.NormFloat64() + 10*math.Sin(float64(i)/100) }
	rng := rand.New(rand.NewPCG(3, 4))
	var st State
	for i := range 3000 {
		p.Observe(&st, float64(1.7e9+300*i), gen(i, rng))
	}
	got, err := Decode(v1(st.AppendBinary(nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := st
	want.Recent, want.Lo, want.Hi, want.RangeN, want.Breaks = 0, st.Last, st.Last, 1, 0
	want.Day, want.Today, want.Peaks = 0, Peak{}, [recurDays]Peak{}
	if got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	m := 0.0
	for i := 3000; i < 4000; i++ {
		m = max(m, p.Observe(&got, float64(1.7e9+300*i), gen(i, rng)).Score)
	}
	if m >= 0.3 {
		t.Errorf("after the upgrade, highest score %.3f, want below 0.3", m)
	}
	var zero State
	if z, err := Decode(v1(zero.AppendBinary(nil))); err != nil || z != zero {
		t.Errorf("version 1 of a state never seen: %+v, %v", z, err)
	}
}

// A state written by version 2 decodes with everything it held and no
// peaks; nightly spikes are scored by the tail until the record has seen
// them on enough days again.
func TestDecodeVersion2(t *testing.T) {
	p := DefaultParams()
	var st State
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 288 * 8 {
		p.Observe(&st, float64(1.7e9+300*i), nightly(i, rng))
	}
	got, err := Decode(v2(st.AppendBinary(nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := st
	want.Day, want.Today, want.Peaks = 0, Peak{}, [recurDays]Peak{}
	if got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	var zero State
	if z, err := Decode(v2(zero.AppendBinary(nil))); err != nil || z != zero {
		t.Errorf("version 2 of a state never seen: %+v, %v", z, err)
	}
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

func FuzzDecode(f *testing.F) {
	var st State
	f.Add(st.AppendBinary(nil), 1.0, 2.0)
	p := DefaultParams()
	for i := 0; i < 400; i++ {
		p.Observe(&st, float64(300*i), float64(i%9))
	}
	f.Add(st.AppendBinary(nil), 1.0, 1e300)
	f.Add([]byte{version}, 0.0, 0.0)
	f.Add(v1(st.AppendBinary(nil)), 1.0, -1e300)
	f.Fuzz(func(t *testing.T, b []byte, tm, x float64) {
		st, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if b[0] == version && !bytes.Equal(st.AppendBinary(nil), b) {
			t.Fatalf("accepted %x but re-encodes differently", b)
		}
		// Whatever was accepted scores finite values in [0, 1].
		for i := 0; i < 3; i++ {
			r := Params{}.Observe(&st, tm, x)
			if !(r.Score >= 0 && r.Score <= 1) || math.IsNaN(r.Low) || math.IsNaN(r.High) {
				t.Fatalf("after decoding %x: %+v", b, r)
			}
			x = -x * 3
		}
	})
}

func TestObserveDoesNotAllocate(t *testing.T) {
	p := DefaultParams()
	var st State
	x := 0.0
	if a := testing.AllocsPerRun(1000, func() { x += 0.5; p.Observe(&st, x*300, math.Sin(x)) }); a != 0 {
		t.Errorf("Observe allocates %v times", a)
	}
}

func BenchmarkObserve(b *testing.B) {
	p := DefaultParams()
	var st State
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = 100 + 10*rng.NormFloat64()
	}
	for i := 0; b.Loop(); i++ {
		p.Observe(&st, float64(300*i), vals[i&4095])
	}
}

func BenchmarkEncode(b *testing.B) {
	p := DefaultParams()
	var st State
	for i := 0; i < 1000; i++ {
		p.Observe(&st, float64(300*i), float64(i%13))
	}
	buf := make([]byte, 0, MaxBinarySize)
	for b.Loop() {
		buf = st.AppendBinary(buf[:0])
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
