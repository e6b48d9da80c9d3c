package detector

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refRobust is the robust rule written the slow, obvious way: sort for the
// median and the MAD, then the same sums in the same (oldest-first) order,
// so its results must equal Robust's bit for bit.
func refRobust(prev []float64, x float64, p Params) Result {
	n := len(prev)
	if n < p.MinSamples || n < 2 {
		return Result{}
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		lo, hi := s[len(s)/2-1], s[len(s)/2]
		return lo + (hi-lo)/2
	}
	m := med(prev)
	dev := make([]float64, n)
	for i, v := range prev {
		dev[i] = math.Abs(v - m)
	}
	s0 := 1.4826 * med(dev)
	if s0 == 0 {
		var sum float64
		for _, d := range dev {
			sum += d
		}
		s0 = 1.2533141373155003 * sum / float64(n)
	}
	if s0 == 0 {
		r := Result{Mean: m}
		if x != m {
			r.StdDev = math.Abs(x-m) * math.Sqrt(float64(n)) / float64(n+1)
			r.Z = (x - m) / r.StdDev
			r.Anomaly = math.Abs(r.Z) > p.Threshold
		}
		return r
	}
	clip := func(v float64) float64 { return min(max(v, m-3*s0), m+3*s0) }
	var sum float64
	for _, v := range prev {
		sum += clip(v)
	}
	c := sum / float64(n)
	var sq float64
	for _, v := range prev {
		sq += (clip(v) - c) * (clip(v) - c)
	}
	nu := max(float64(n-1), 3)
	sd := math.Sqrt(sq/(float64(n-1)*winsorizedVariance(3))) * math.Sqrt((1+1/float64(n))*nu/(nu-2))
	r := Result{Mean: c, StdDev: sd}
	r.Z = (x - c) / sd
	r.Anomaly = math.Abs(r.Z) > p.Threshold
	return r
}

func TestRobustMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	gens := map[string]func() float64{
		"gaussian": func() float64 { return 100 + 15*rng.NormFloat64() },
		"spiky": func() float64 {
			v := 100 + 15*rng.NormFloat64()
			if rng.IntN(6) == 0 {
				v += 300 * (rng.Float64() - 0.4)
			}
			return v
		},
		"ties":     func() float64 { return float64(rng.IntN(4)) },         // MAD is often 0
		"flat":     func() float64 { return 5 + float64(rng.IntN(50)/49) }, // mostly 5, sometimes 6
		"constant": func() float64 { return 3 },
		"zeros":    func() float64 { return []float64{math.Copysign(0, -1), 0, 1, -1}[rng.IntN(4)] },
	}
	for name, gen := range gens {
		for _, size := range []int{1, 2, 3, 7, 50, 64} {
			for _, minSamples := range []int{1, 2, 10} {
				p := Params{WindowSize: size, MinSamples: minSamples, Threshold: 2}
				d := NewRobust(p)
				w := NewWindow(size)
				var hist []float64
				for i := 0; i < 400; i++ {
					x := gen()
					prev := hist[max(len(hist)-size, 0):]
					want := refRobust(prev, x, p)
					got := d.Observe(w, x)
					if got != want {
						t.Fatalf("%s size %d min %d value %d (%v after %v): got %+v, want %+v", name, size, minSamples, i, x, prev, got, want)
					}
					hist = append(hist, x)
					if w.Len() != min(len(hist), size) || w.At(w.Len()-1) != x {
						t.Fatalf("%s: the window does not end with the value", name)
					}
					if i%97 == 0 { // as a device's state is decoded: the sorted copy is rebuilt
						w.Reset(w.AppendValues(nil))
					}
				}
			}
		}
	}
}

func TestRobustTable(t *testing.T) {
	p := Params{WindowSize: 10, MinSamples: 4, Threshold: 2}
	alt := []float64{9, 11, 9, 11, 9, 11, 9, 11, 9, 11} // median 10, MAD 1, σ 1
	tests := []struct {
		name    string
		prev    []float64
		x       float64
		judged  bool
		anomaly bool
		z       float64 // checked when not NaN
	}{
		{"too few values", []float64{1, 2, 3}, 100, false, false, 0},
		{"typical value", alt, 10.5, true, false, math.NaN()},
		{"spike", alt, 20, true, true, math.NaN()},
		{"dip", alt, 0, true, true, math.NaN()},
		{"spike in the window does not mask a second spike", []float64{9, 11, 9, 11, 500, 11, 9, 11, 9, 11}, 20, true, true, math.NaN()},
		{"flat line, same value", []float64{4, 4, 4, 4, 4}, 4, true, false, 0},
		{"flat line, different value", []float64{4, 4, 4, 4}, 5, true, true, 5 / math.Sqrt(4)},
		{"flat line, value below", []float64{4, 4, 4, 4}, 3, true, true, -5 / math.Sqrt(4)},
		{"MAD zero falls back to the mean absolute deviation", []float64{0, 0, 0, 0, 0, 0, 10, 10, 10, 10}, 10, true, false, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(p.WindowSize)
			w.Reset(tc.prev)
			r := NewRobust(p).Observe(w, tc.x)
			if judged := r != (Result{}); judged != tc.judged {
				t.Fatalf("judged = %v, want %v (%+v)", judged, tc.judged, r)
			}
			if r.Anomaly != tc.anomaly {
				t.Errorf("anomaly = %v, want %v (%+v)", r.Anomaly, tc.anomaly, r)
			}
			if !math.IsNaN(tc.z) && math.Abs(r.Z-tc.z) > 1e-12 {
				t.Errorf("z = %v, want %v", r.Z, tc.z)
			}
			if r.StdDev > 0 && math.Abs(r.Z-(tc.x-r.Mean)/r.StdDev) > 1e-12 {
				t.Errorf("z = %v is not (x − Mean)/StdDev for %+v", r.Z, r)
			}
			if w.At(w.Len()-1) != tc.x {
				t.Errorf("the value was not appended to the window")
			}
		})
	}
}

func TestRobustSpreadIgnoresOutliers(t *testing.T) {
	p := Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	rng := rand.New(rand.NewPCG(1, 2))
	var clean, dirty []float64
	for i := 0; i < 50; i++ {
		v := rng.NormFloat64()
		clean = append(clean, v)
		if i%6 == 0 {
			v += 1000 // 9 huge spikes among 50 values
		}
		dirty = append(dirty, v)
	}
	score := func(prev []float64) Result {
		w := NewWindow(50)
		w.Reset(prev)
		return NewRobust(p).Observe(w, 0)
	}
	c, d := score(clean), score(dirty)
	// 9 of 50 values at +1000σ: each counts as a 3σ value at most.
	if d.StdDev > 2*c.StdDev || math.Abs(d.Mean-c.Mean) > c.StdDev {
		t.Errorf("outliers moved the estimate too far: clean %+v, dirty %+v", c, d)
	}
	w := NewWindow(50)
	w.Reset(dirty)
	w.Push(0)
	if sd := func() float64 { _, s := w.MeanStdDev(); return s }(); sd < 100 {
		t.Fatalf("test data: the plain σ should be huge, is %v", sd)
	}
}

func TestRobustNonFinite(t *testing.T) {
	p := Params{WindowSize: 8, MinSamples: 2, Threshold: 2}
	d := NewRobust(p)
	w := NewWindow(8)
	for _, v := range []float64{1, 2, 3, 2, 1} {
		d.Observe(w, v)
	}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if r := d.Observe(w, x); r != (Result{}) {
			t.Errorf("Observe(%v) = %+v, want the zero Result", x, r)
		}
	}
	if w.Len() != 5 {
		t.Errorf("non-finite values reached the window: len %d", w.Len())
	}
}

// TestRobustNullRate checks the calibration the detector's doc promises: on
// Gaussian noise, with a window of 50, it flags about the 2σ rule's 4.55%.
func TestRobustNullRate(t *testing.T) {
	p := Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	rng := rand.New(rand.NewPCG(3, 4))
	d := NewRobust(p)
	const n = 100000
	flagged, judged := 0, 0
	w := NewWindow(p.WindowSize)
	for i := 0; i < n; i++ {
		r := d.Observe(w, 10+3*rng.NormFloat64())
		if i >= p.WindowSize {
			judged++
			if r.Anomaly {
				flagged++
			}
		}
	}
	rate := float64(flagged) / float64(judged)
	if rate < 0.042 || rate > 0.0505 {
		t.Errorf("null false-positive rate %.2f%%, want within [4.2%%, 5.05%%]", 100*rate)
	}
}

func TestSelectKth(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(70)
		a := make([]float64, n)
		for i := range a {
			switch trial % 3 {
			case 0:
				a[i] = rng.NormFloat64()
			case 1:
				a[i] = float64(rng.IntN(3)) // many ties
			default:
				a[i] = float64(i) // sorted input
			}
		}
		if trial%5 == 0 {
			slices.Reverse(a)
		}
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		k := rng.IntN(n)
		got := selectKth(a, k)
		if got != sorted[k] {
			t.Fatalf("selectKth(%v, %d) = %v, want %v", sorted, k, got, sorted[k])
		}
		for i := range a {
			if (i < k && a[i] > got) || (i > k && a[i] < got) {
				t.Fatalf("selectKth left %v out of place at %d: %v", a[i], i, a)
			}
		}
		b := slices.Clone(sorted)
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		want := sorted[n/2]
		if n%2 == 0 {
			lo := sorted[n/2-1]
			want = lo + (sorted[n/2]-lo)/2
		}
		if got := median(b); got != want {
			t.Fatalf("median(%v) = %v, want %v", sorted, got, want)
		}
	}
	// NaN must not hang it or make it index out of range.
	a := []float64{3, math.NaN(), 1, math.NaN(), 2}
	for k := range a {
		selectKth(slices.Clone(a), k)
	}
}

func TestWindowSortedFollowsPushAndReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, size := range []int{1, 2, 5, 50} {
		w := NewWindow(size)
		for i := range 500 {
			x := []float64{math.Copysign(0, -1), 0, float64(rng.IntN(5)), rng.NormFloat64()}[rng.IntN(4)]
			w.Push(x)
			if i%5 == 0 {
				w.Sorted() // from here on, Push keeps it sorted
			}
			if i%89 == 0 {
				w.Reset(w.AppendValues(nil))
			}
			want := w.AppendValues(nil)
			slices.SortFunc(want, compareTotal)
			got := w.Sorted()
			if len(got) != len(want) {
				t.Fatalf("size %d, value %d: sorted holds %d values, the window %d", size, i, len(got), len(want))
			}
			for k := range want {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
					t.Fatalf("size %d, value %d: sorted %v, want %v", size, i, got, want)
				}
			}
		}
	}
}

// A window read from a damaged state may hold a NaN (Reset takes what it
// is given): pushing past it must not lose the sorted copy's consistency.
func TestWindowSortedSurvivesANaN(t *testing.T) {
	w := NewWindow(3)
	w.Reset([]float64{math.NaN(), -2, -1}) // sorted: NaN first, where a search for NaN does not land
	w.Sorted()
	for _, x := range []float64{3, 4, 5, 0} {
		w.Push(x)
		want := w.AppendValues(nil)
		slices.Sort(want)
		if got := w.Sorted(); !slices.Equal(got, want) {
			t.Fatalf("after %v: sorted %v, want %v", x, got, want)
		}
	}
}

func TestRobustDoesNotAllocate(t *testing.T) {
	p := Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	d, err := New("robust", p)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWindow(p.WindowSize)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 100; i++ {
		d.Observe(w, rng.NormFloat64())
	}
	x := 0.0
	if a := testing.AllocsPerRun(1000, func() { x += 0.01; d.Observe(w, x) }); a != 0 {
		t.Errorf("Observe allocates %v times", a)
	}
}

func TestNamesAndNew(t *testing.T) {
	for _, name := range Names {
		d, err := New(name, Params{WindowSize: 5, MinSamples: 2, Threshold: 2})
		if err != nil || d.Name() != name {
			t.Errorf("New(%q) = %v, %v", name, d, err)
		}
	}
	if _, err := New("nope", Params{}); err == nil {
		t.Error("New accepted an unknown name")
	}
}

func benchObserve(b *testing.B, name string) {
	p := Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	d, err := New(name, p)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = 100 + 15*rng.NormFloat64()
		if i%6 == 0 {
			vals[i] += 200
		}
	}
	w := NewWindow(p.WindowSize)
	for _, v := range vals[:p.WindowSize] {
		d.Observe(w, v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		d.Observe(w, vals[i&1023])
	}
}

func BenchmarkRobustObserve(b *testing.B) { benchObserve(b, "robust") }

// BenchmarkRobustObserveAfterReset is a window just decoded from a
// device's state: the first value scored sorts it.
func BenchmarkRobustObserveAfterReset(b *testing.B) {
	p := Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	d := NewRobust(p)
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, p.WindowSize)
	for i := range vals {
		vals[i] = 100 + 15*rng.NormFloat64()
	}
	w := NewWindow(p.WindowSize)
	b.ReportAllocs()
	for b.Loop() {
		w.Reset(vals)
		d.Observe(w, 150)
	}
}
