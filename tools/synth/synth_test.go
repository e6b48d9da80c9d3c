package synth

import (
	"math"
	"slices"
	"testing"
)

func mustScenario(t *testing.T, name string) Scenario {
	t.Helper()
	for _, sc := range Scenarios() {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return Scenario{}
}

func TestDeterministic(t *testing.T) {
	for _, sc := range Scenarios() {
		a, err := Generate(9, sc, 3, 500)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Generate(9, sc, 3, 500)
		c, _ := Generate(10, sc, 3, 500)
		for i := range a {
			if !slices.Equal(a[i].Values, b[i].Values) || !slices.Equal(a[i].Kinds, b[i].Kinds) || !slices.Equal(a[i].Shifts, b[i].Shifts) {
				t.Fatalf("%s: same seed, different stream %d", sc.Name, i)
			}
			if slices.Equal(a[i].Values, c[i].Values) {
				t.Fatalf("%s: different seeds, same stream %d", sc.Name, i)
			}
		}
	}
}

// A stream depends only on the seed and its names: more devices or more
// events leave the streams already generated as they were.
func TestStreamsAreIndependent(t *testing.T) {
	sc := mustScenario(t, Mixed)
	small, _ := Generate(1, sc, 2, 700)
	big, _ := Generate(1, sc, 4, 1500)
	for i := range small {
		j := i // devices come first, then signals, so the first streams match
		if big[j].Device != small[i].Device || big[j].Signal != small[i].Signal {
			t.Fatalf("order differs: %s/%s vs %s/%s", big[j].Device, big[j].Signal, small[i].Device, small[i].Signal)
		}
		if !slices.Equal(big[j].Values[:700], small[i].Values) || !slices.Equal(big[j].Kinds[:700], small[i].Kinds) {
			t.Fatalf("stream %s/%s changed with more devices or events", small[i].Device, small[i].Signal)
		}
	}
}

func TestLocustMix(t *testing.T) {
	st, err := Generate(1, mustScenario(t, Locust), 20, 3000)
	if err != nil {
		t.Fatal(err)
	}
	var n, anomalies, ups int
	for _, s := range st {
		if s.Signal == "cpu" {
			for _, k := range s.Kinds {
				if k != Normal {
					t.Fatal("cpu must be plain noise")
				}
			}
			continue
		}
		if s.Base < 80 || s.Base > 120 || s.Sigma != 15 {
			t.Fatalf("rps base %v σ %v", s.Base, s.Sigma)
		}
		for i, v := range s.Values {
			if v < 0 {
				t.Fatalf("value %v below 0", v)
			}
			n++
			switch s.Kinds[i] {
			case Spike:
				anomalies++
				ups++
				// base + noise + U(150,300): at least 150 − 6σ above the base.
				if v < s.Base+150-90 {
					t.Fatalf("spike %v too small for base %v", v, s.Base)
				}
			case Dip:
				anomalies++
				if v > s.Base-100+90 {
					t.Fatalf("dip %v too shallow for base %v", v, s.Base)
				}
			case Normal:
			default:
				t.Fatalf("unexpected kind %v", s.Kinds[i])
			}
		}
	}
	if share := float64(anomalies) / float64(n); math.Abs(share-1.0/6) > 0.01 {
		t.Errorf("anomaly share %.4f, want 1/6", share)
	}
	if up := float64(ups) / float64(anomalies); math.Abs(up-0.5) > 0.02 {
		t.Errorf("spike share among anomalies %.3f, want 0.5", up)
	}
}

func TestSpikesAreFourToEightSigma(t *testing.T) {
	st, _ := Generate(2, mustScenario(t, Spikes), 30, 3000)
	var n, anomalies int
	var noise, noiseSq float64
	var normals int
	for _, s := range st {
		for i, v := range s.Values {
			d := (v - s.Base) / s.Sigma
			n++
			switch s.Kinds[i] {
			case Spike, Dip:
				anomalies++
				if s.Kinds[i] == Dip {
					d = -d
				}
				// size U(4,8) plus N(0,1) noise.
				if d < 4-6 || d > 8+6 {
					t.Fatalf("%v of %.2fσ", s.Kinds[i], d)
				}
			case Normal:
				noise += d
				noiseSq += d * d
				normals++
			}
		}
	}
	if share := float64(anomalies) / float64(n); math.Abs(share-0.01) > 0.003 { // only temp carries them: 2% of half the values
		t.Errorf("anomaly share %.4f, want 0.01", share)
	}
	mean := noise / float64(normals)
	sd := math.Sqrt(noiseSq/float64(normals) - mean*mean)
	if math.Abs(mean) > 0.02 || math.Abs(sd-1) > 0.02 {
		t.Errorf("normal values: mean %.3fσ, sd %.3fσ; want 0 and 1", mean, sd)
	}
}

func TestShiftsAndBursts(t *testing.T) {
	st, _ := Generate(3, mustScenario(t, Mixed), 10, 4000)
	var shifts, bursts int
	for _, s := range st {
		if s.Signal != "temp" {
			if len(s.Shifts) != 0 || slices.ContainsFunc(s.Kinds, Kind.Anomaly) {
				t.Fatalf("%s carries anomalies", s.Signal)
			}
			continue
		}
		for j, sh := range s.Shifts {
			shifts++
			if a := math.Abs(sh.Size); a < 2 || a > 8 {
				t.Fatalf("shift of %vσ", sh.Size)
			}
			if j > 0 && sh.At-s.Shifts[j-1].At < 300 {
				t.Fatalf("shifts %d values apart", sh.At-s.Shifts[j-1].At)
			}
			// The first ShiftSpan values are labelled shift, even inside a
			// burst; the value before is not.
			for i := sh.At; i < min(sh.At+ShiftSpan, len(s.Kinds)); i++ {
				if s.Kinds[i] != Shift {
					t.Fatalf("value %d after a shift at %d is %v", i-sh.At, sh.At, s.Kinds[i])
				}
			}
			if sh.At > 0 && s.Kinds[sh.At-1] == Shift && (j == 0 || sh.At-s.Shifts[j-1].At > ShiftSpan) {
				t.Fatalf("value before a shift labelled shift")
			}
		}
	}
	// Bursts (scenario bursts has nothing else): runs of 10–30 values.
	st, _ = Generate(3, mustScenario(t, Bursts), 10, 4000)
	for _, s := range st {
		run := 0
		for i, k := range s.Kinds {
			if k == Burst {
				run++
			} else if k != Normal {
				t.Fatalf("%v in scenario bursts", k)
			}
			if (k != Burst || i == len(s.Kinds)-1) && run > 0 {
				bursts++
				if (run < 10 && i != len(s.Kinds)-1) || run > 30 {
					t.Fatalf("burst of %d values", run)
				}
				run = 0
			}
		}
	}
	if shifts < 40 || bursts < 30 {
		t.Errorf("only %d shifts and %d bursts", shifts, bursts)
	}
}

func TestLevelFollowsShifts(t *testing.T) {
	sig := Signal{Name: "x", Base: Range{10, 10}, Noise: Range{1e-9, 1e-9}, ShiftGap: IntRange{50, 50}, ShiftSize: Range{5, 5}}
	s := GenerateStream(1, "t", "d", sig, 200)
	if len(s.Shifts) != 3 {
		t.Fatalf("shifts at %v, want 50, 100, 150", s.Shifts)
	}
	level := 10.0
	for i, v := range s.Values {
		for _, sh := range s.Shifts {
			if sh.At == i {
				level += sh.Size * s.Sigma
			}
		}
		if math.Abs(v-level) > 1e-6 {
			t.Fatalf("value %d = %v, want level %v", i, v, level)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Signal{
		{},
		{Name: "x"},
		{Name: "x", Noise: Range{1, 1}, SpikeRate: 1},
		{Name: "x", Noise: Range{1, 1}, ShiftGap: IntRange{2, 5}},
		{Name: "x", Noise: Range{1, 1}, BurstGap: IntRange{10, 20}},
	}
	for _, s := range bad {
		if s.Validate() == nil {
			t.Errorf("%+v validated", s)
		}
		if _, err := Generate(1, Scenario{Name: "s", Signals: []Signal{s}}, 1, 10); err == nil {
			t.Errorf("Generate accepted %+v", s)
		}
	}
	for _, sc := range Scenarios() {
		for _, s := range sc.Signals {
			if err := s.Validate(); err != nil {
				t.Errorf("%s: %v", sc.Name, err)
			}
		}
	}
	if _, err := Generate(1, Scenarios()[0], 0, 10); err == nil {
		t.Error("Generate accepted 0 devices")
	}
}

func TestKinds(t *testing.T) {
	if len(Kinds) != NumKinds || Normal.Anomaly() || !Burst.Anomaly() || Dip.String() != "dip" {
		t.Error("kinds are inconsistent")
	}
}
