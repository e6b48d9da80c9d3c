package detector

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refClassic is the original rule written naively: keep the last
// WindowSize values in a slice, append x, take the mean and the population
// σ in two passes, oldest first.
func refClassic(hist []float64, x float64, p Params) Result {
	win := append(hist[max(len(hist)-(p.WindowSize-1), 0):len(hist):len(hist)], x)
	var sum float64
	for _, v := range win {
		sum += v
	}
	mean := sum / float64(len(win))
	var sq float64
	for _, v := range win {
		sq += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(sq / float64(len(win)))
	r := Result{Mean: mean, StdDev: sd}
	if len(win) >= p.MinSamples && sd > 0 {
		r.Z = (x - mean) / sd
		r.Anomaly = math.Abs(r.Z) > p.Threshold
	}
	return r
}

func TestClassicMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	gens := map[string]func() float64{
		"gaussian": func() float64 { return 100 + 15*rng.NormFloat64() },
		"spiky": func() float64 {
			v := 100 + 15*rng.NormFloat64()
			if rng.IntN(6) == 0 {
				v += 250
			}
			return v
		},
		"ties":     func() float64 { return float64(rng.IntN(3)) },
		"constant": func() float64 { return 7 },
	}
	for name, gen := range gens {
		for _, size := range []int{1, 2, 5, 50} {
			for _, minSamples := range []int{1, 3, 10, 60} {
				for _, th := range []float64{1, 2, 3} {
					p := Params{WindowSize: size, MinSamples: minSamples, Threshold: th}
					d, err := New("classic", p)
					if err != nil {
						t.Fatal(err)
					}
					w := NewWindow(size)
					var hist []float64
					for i := 0; i < 300; i++ {
						x := gen()
						want := refClassic(hist, x, p)
						got := d.Observe(w, x)
						if got != want {
							t.Fatalf("%s %+v value %d: got %+v, want %+v", name, p, i, got, want)
						}
						hist = append(hist, x)
					}
				}
			}
		}
	}
}

func TestClassicEdgeCases(t *testing.T) {
	p := Params{WindowSize: 4, MinSamples: 3, Threshold: 1}
	d := Classic{p: p}
	w := NewWindow(p.WindowSize)

	// Below MinSamples (the value itself counts): z = 0 whatever the value.
	if r := d.Observe(w, 1); r != (Result{Mean: 1}) {
		t.Errorf("first value: %+v", r)
	}
	if r := d.Observe(w, 100); r.Z != 0 || r.Anomaly || r.Mean != 50.5 || r.StdDev != 49.5 {
		t.Errorf("second value (1 below MinSamples): %+v", r)
	}
	// The third value reaches MinSamples: window {1, 100, 1}.
	r := d.Observe(w, 1)
	mean := 34.0
	sd := math.Sqrt((2*33*33 + 66*66) / 3.0)
	if r.Mean != mean || math.Abs(r.StdDev-sd) > 1e-12 || math.Abs(r.Z-(1-mean)/sd) > 1e-12 || r.Anomaly {
		t.Errorf("third value: %+v, want mean %v sd %v z %v", r, mean, sd, (1-mean)/sd)
	}

	// σ = 0: a constant window never scores, however many values.
	w = NewWindow(p.WindowSize)
	for i := 0; i < 10; i++ {
		if r := d.Observe(w, 5); r != (Result{Mean: 5}) {
			t.Fatalf("constant value %d: %+v", i, r)
		}
	}
	// Leaving the flat line: window {5, 5, 5, 9}, mean 6, σ √3, z = 3/√3.
	r = d.Observe(w, 9)
	if r.Mean != 6 || r.StdDev != math.Sqrt(3) || r.Z != 3/math.Sqrt(3) || !r.Anomaly {
		t.Errorf("leaving a flat line: %+v", r)
	}

	// The current value is included, so its |z| can never exceed √(n−1):
	// with 1 value in the window above 49 equal ones z = 7 exactly, the
	// masking the robust detector was written to avoid.
	p = Params{WindowSize: 50, MinSamples: 10, Threshold: 2}
	w = NewWindow(50)
	d = Classic{p: p}
	for i := 0; i < 49; i++ {
		d.Observe(w, 0)
	}
	if r := d.Observe(w, 1e9); math.Abs(r.Z-7) > 1e-9 {
		t.Errorf("z of a huge value after a flat line = %v, want √49 = 7", r.Z)
	}
}

func TestClassicDoesNotAllocate(t *testing.T) {
	d, _ := New("classic", Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	w := NewWindow(50)
	x := 0.0
	if a := testing.AllocsPerRun(1000, func() { x += 0.5; d.Observe(w, x) }); a != 0 {
		t.Errorf("Observe allocates %v times", a)
	}
}

func TestFactory(t *testing.T) {
	if _, err := Factory("magic", Params{WindowSize: 50, MinSamples: 10, Threshold: 2}); err == nil {
		t.Error("Factory accepted an unknown detector")
	}
	for _, name := range Names {
		newDet, err := Factory(name, Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		a, b := newDet(), newDet()
		if a.Name() != name {
			t.Errorf("Factory(%q) makes %q detectors", name, a.Name())
		}
		// Detectors keep scratch space: every worker must get its own.
		if pa, ok := a.(*Robust); ok && pa == b.(*Robust) {
			t.Errorf("Factory(%q) returned the same detector twice", name)
		}
	}
}
