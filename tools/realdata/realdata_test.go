package realdata

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/tools/nab"
)

// episodes runs values (one every 5 minutes) through the default pipeline
// and returns the indices of the values that opened and closed alerts.
func episodes(values []float64) (opened, closed []int) {
	cfg := DefaultConfig()
	times := make([]float64, len(values))
	for i := range times {
		times[i] = 1699920000 + 300*float64(i) // midnight UTC
	}
	tr := RunSignal(cfg, times, values)
	var st alert.State
	for i := range values {
		in := alert.Input{Time: times[i], Value: values[i], Score: tr.Scores[i], Z: tr.Z[i], Low: tr.Low[i], High: tr.High[i]}
		switch cfg.Alert.Step(&st, in) {
		case alert.Opened:
			opened = append(opened, i)
		case alert.Closed:
			closed = append(closed, i)
		}
	}
	return opened, closed
}

func TestLevelShiftOpensOneAlert(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		vals := make([]float64, 3000)
		for i := range vals {
			vals[i] = 100 + 5*rng.NormFloat64()
			if i >= 2000 {
				vals[i] += 50 // a 10σ shift
			}
		}
		opened, closed := episodes(vals)
		inShift := slices.DeleteFunc(slices.Clone(opened), func(i int) bool { return i < 2000 })
		if len(inShift) != 1 || inShift[0] > 2002 {
			t.Errorf("seed %d: alerts opened at %v, want exactly one at the shift (2000–2002)", seed, opened)
			continue
		}
		// It closes once the new level is the norm, and stays closed.
		after := slices.DeleteFunc(slices.Clone(closed), func(i int) bool { return i < inShift[0] })
		if len(after) != 1 {
			t.Errorf("seed %d: closed at %v after opening at %d, want once", seed, closed, inShift[0])
		}
	}
}

func TestNoiseDoesNotFlap(t *testing.T) {
	// Gaussian noise, uniform quantised noise and a noisy daily cycle:
	// over 20 000 values (70 days at 5 minutes), a handful of alerts at
	// most, each closed within a few values.
	gens := map[string]func(i int, rng *rand.Rand) float64{
		"gaussian":  func(i int, rng *rand.Rand) float64 { return 20 + rng.NormFloat64() },
		"quantised": func(i int, rng *rand.Rand) float64 { return float64(rng.IntN(5)) },
		"daily": func(i int, rng *rand.Rand) float64 {
			return 50 + 10*float64((i%288)/144) + rng.NormFloat64()
		},
	}
	for name, gen := range gens {
		rng := rand.New(rand.NewPCG(11, 12))
		vals := make([]float64, 20000)
		for i := range vals {
			vals[i] = gen(i, rng)
		}
		opened, closed := episodes(vals)
		t.Logf("%s: %d alerts", name, len(opened))
		if len(opened) > 10 {
			t.Errorf("%s: %d alerts in 20000 values of noise", name, len(opened))
		}
		for i, o := range opened {
			if i < len(closed) && closed[i]-o > 20 {
				t.Errorf("%s: alert open from %d to %d", name, o, closed[i])
			}
		}
	}
}

func TestASDWindows(t *testing.T) {
	labels := make([]bool, 200)
	for _, seg := range [][2]int{{20, 24}, {100, 100}, {104, 106}, {195, 199}} {
		for i := seg[0]; i <= seg[1]; i++ {
			labels[i] = true
		}
	}
	// 4 segments: NAB's window length 10% × 200 / 4 = 5 rows, so 2 on
	// each side; the second and third overlap and merge; the last is clipped.
	want := []nab.Window{{Start: 18, End: 26}, {Start: 98, End: 108}, {Start: 193, End: 199}}
	if got := ASDWindows(labels); !slices.Equal(got, want) {
		t.Errorf("ASDWindows = %v, want %v", got, want)
	}
	if got := ASDWindows(make([]bool, 10)); got != nil {
		t.Errorf("no labels: %v", got)
	}
}

func TestOpeningsAreDetections(t *testing.T) {
	tr := Trace{Times: []float64{1, 2, 3, 4, 5, 6, 7, 8}, Values: make([]float64, 8), Z: make([]float64, 8),
		Low: make([]float64, 8), High: make([]float64, 8), Scores: []float64{0, 0.9, 0.95, 0, 0, 0.2, 0.7, 0}}
	p := alert.Params{Threshold: 0.5, Recovery: 2}
	got := Openings(nil, tr, p)
	want := []float64{0, 0.9, 0, 0, 0, 0, 0.7, 0}
	if !slices.Equal(got, want) {
		t.Errorf("Openings = %v, want %v", got, want)
	}
	// A second signal of the same device adds its openings (the larger
	// score where both open at once).
	tr2 := tr
	tr2.Scores = []float64{0, 0.99, 0, 0, 0, 0.6, 0, 0}
	got = Openings(got, tr2, p)
	want = []float64{0, 0.99, 0, 0, 0, 0.6, 0.7, 0}
	if !slices.Equal(got, want) {
		t.Errorf("two signals: %v, want %v", got, want)
	}
}
