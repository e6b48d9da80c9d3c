// Package synth generates labelled synthetic metric streams for measuring
// anomaly detectors.
//
// A scenario describes one or more signals; every device of a scenario gets
// one stream per signal. A stream is a baseline (a per-device level, an
// optional linear drift and an optional daily sinusoid) plus Gaussian noise,
// with anomalies of known kinds injected on top: spikes, dips, level shifts
// and bursts of heavy-tailed noise. Every value carries its ground truth;
// where kinds meet, the first values after a level shift are labelled
// shift even inside a burst, and spikes and dips are injected only into
// values that are otherwise normal.
//
// Generation is deterministic: a stream depends only on the seed and on the
// scenario, device and signal names (each stream has its own PCG source), so
// adding devices or events never changes the streams already generated.
package synth

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// Kind is the ground truth of one value.
type Kind uint8

// The kinds of values a stream holds. Everything but Normal is an anomaly.
const (
	Normal Kind = iota // baseline plus ordinary noise (drift and seasonality are normal)
	Spike              // a single value pushed up
	Dip                // a single value pushed down
	Shift              // one of the first ShiftSpan values after a level shift
	Burst              // a value inside a burst of heavy-tailed noise
)

// NumKinds is the number of kinds; kinds are 0 ≤ k < NumKinds.
const NumKinds = int(Burst) + 1

// Kinds lists every kind, Normal first.
var Kinds = []Kind{Normal, Spike, Dip, Shift, Burst}

func (k Kind) String() string {
	switch k {
	case Normal:
		return "normal"
	case Spike:
		return "spike"
	case Dip:
		return "dip"
	case Shift:
		return "shift"
	case Burst:
		return "burst"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Anomaly reports whether values of kind k are anomalies.
func (k Kind) Anomaly() bool { return k != Normal }

// Range is a closed interval; values are drawn uniformly from it.
type Range struct{ Lo, Hi float64 }

func (r Range) draw(rng *rand.Rand) float64 {
	if r.Hi <= r.Lo {
		return r.Lo
	}
	return r.Lo + (r.Hi-r.Lo)*rng.Float64()
}

// IntRange is a closed interval of whole numbers.
type IntRange struct{ Lo, Hi int }

func (r IntRange) draw(rng *rand.Rand) int {
	if r.Hi <= r.Lo {
		return r.Lo
	}
	return r.Lo + rng.IntN(r.Hi-r.Lo+1)
}

func (r Range) String() string {
	if r.Hi == r.Lo {
		return fmt.Sprintf("%g", r.Lo)
	}
	return fmt.Sprintf("U(%g,%g)", r.Lo, r.Hi)
}

func (r IntRange) String() string {
	if r.Hi == r.Lo {
		return fmt.Sprintf("%d", r.Lo)
	}
	return fmt.Sprintf("U{%d..%d}", r.Lo, r.Hi)
}

// ShiftSpan is how many values, from the first value at the new level on,
// are labelled Shift after a level shift. A level shift is the change
// itself: once a detector's window has seen the new level for a while the
// new level is normal. The values after these ShiftSpan (until the window
// has turned over) are labelled Normal; evaluations decide how to count
// flags there (package eval counts them apart, as "settling" values).
const ShiftSpan = 3

// Signal describes how one signal of a scenario is generated. Magnitudes
// marked "σ" are multiples of the stream's noise standard deviation.
type Signal struct {
	Name  string
	Base  Range // per-device level
	Noise Range // per-device noise standard deviation (absolute units)

	Drift        Range   // per-device drift per 1000 values, σ (may be negative)
	SeasonAmp    Range   // per-device amplitude of the daily sinusoid, σ
	SeasonPeriod int     // values per day; 0 means no seasonality
	ClipAtZero   bool    // values below 0 become 0 (after anomalies are added)
	SpikeRate    float64 // probability that a value is a spike or a dip
	UpShare      float64 // share of spikes among spikes and dips
	Up           Range   // spike size
	Down         Range   // dip size
	SizesInSigma bool    // Up and Down are in σ rather than absolute units

	ShiftGap  IntRange // values between level shifts; Lo 0 means none
	ShiftSize Range    // level shift size, σ; the sign is random

	BurstGap   IntRange // values between noise bursts; Lo 0 means none
	BurstLen   IntRange // values per burst
	BurstScale float64  // burst noise is σ·BurstScale·t(BurstDF)
	BurstDF    int      // degrees of freedom of the burst noise (≥ 1)
}

// HasAnomalies reports whether the signal injects any anomaly.
func (s Signal) HasAnomalies() bool {
	return s.SpikeRate > 0 || s.ShiftGap.Lo > 0 || s.BurstGap.Lo > 0
}

// Validate reports a description that cannot be generated.
func (s Signal) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("signal without a name"))
	}
	if s.Noise.Lo <= 0 || s.Noise.Hi < s.Noise.Lo {
		errs = append(errs, fmt.Errorf("%s: noise must be positive", s.Name))
	}
	if s.SpikeRate < 0 || s.SpikeRate >= 1 || s.UpShare < 0 || s.UpShare > 1 {
		errs = append(errs, fmt.Errorf("%s: spike rate and up share must be in [0,1)", s.Name))
	}
	if s.SeasonPeriod < 0 {
		errs = append(errs, fmt.Errorf("%s: negative season period", s.Name))
	}
	if s.ShiftGap.Lo < 0 || (s.ShiftGap.Lo > 0 && s.ShiftGap.Lo <= ShiftSpan) {
		errs = append(errs, fmt.Errorf("%s: shift gap must be 0 or above %d", s.Name, ShiftSpan))
	}
	if s.BurstGap.Lo < 0 || (s.BurstGap.Lo > 0 && (s.BurstLen.Lo < 1 || s.BurstDF < 1)) {
		errs = append(errs, fmt.Errorf("%s: bursts need a length ≥ 1 and BurstDF ≥ 1", s.Name))
	}
	return errors.Join(errs...)
}

// Scenario is a named set of signals.
type Scenario struct {
	Name        string
	Description string
	Signals     []Signal
}

// Stream is the generated history of one signal of one device.
type Stream struct {
	Scenario string
	Device   string
	Signal   string
	Base     float64 // the device's level
	Sigma    float64 // the device's noise standard deviation
	Values   []float64
	Kinds    []Kind
	Shifts   []LevelShift // in order
}

// LevelShift records one level shift of a stream.
type LevelShift struct {
	At   int     // index of the first value at the new level
	Size float64 // signed size, σ
}

// Generate returns the streams of scenario sc for devices devices of events
// values each, ordered by device then by signal.
func Generate(seed uint64, sc Scenario, devices, events int) ([]Stream, error) {
	if devices < 1 || events < 1 {
		return nil, fmt.Errorf("need at least one device and one event, got %d and %d", devices, events)
	}
	for _, s := range sc.Signals {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
	}
	out := make([]Stream, 0, devices*len(sc.Signals))
	for d := 0; d < devices; d++ {
		dev := fmt.Sprintf("dev-%03d", d)
		for _, s := range sc.Signals {
			out = append(out, GenerateStream(seed, sc.Name, dev, s, events))
		}
	}
	return out, nil
}

// GenerateStream returns one stream; it depends only on its arguments.
func GenerateStream(seed uint64, scenario, device string, s Signal, events int) Stream {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", scenario, device, s.Name)
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))

	st := Stream{
		Scenario: scenario, Device: device, Signal: s.Name,
		Values: make([]float64, events),
		Kinds:  make([]Kind, events),
	}
	// Per-device parameters, always drawn in the same order.
	st.Base = s.Base.draw(rng)
	sigma := s.Noise.draw(rng)
	st.Sigma = sigma
	drift := s.Drift.draw(rng) * sigma / 1000
	amp := s.SeasonAmp.draw(rng) * sigma
	phase := rng.Float64() * 2 * math.Pi

	nextShift, nextBurst := -1, -1
	if s.ShiftGap.Lo > 0 {
		nextShift = s.ShiftGap.draw(rng)
	}
	if s.BurstGap.Lo > 0 {
		nextBurst = s.BurstGap.draw(rng)
	}
	level := 0.0   // sum of the level shifts so far
	shiftLeft := 0 // values still labelled Shift
	burstLeft := 0 // values left in the current burst

	for i := 0; i < events; i++ {
		kind := Normal
		if i == nextShift {
			size := s.ShiftSize.draw(rng)
			if rng.IntN(2) == 0 {
				size = -size
			}
			level += size * sigma
			st.Shifts = append(st.Shifts, LevelShift{At: i, Size: size})
			shiftLeft = ShiftSpan
			nextShift = i + s.ShiftGap.draw(rng)
		}
		if i == nextBurst {
			burstLeft = s.BurstLen.draw(rng)
			nextBurst = i + burstLeft + s.BurstGap.draw(rng)
		}

		v := st.Base + level + drift*float64(i)
		if s.SeasonPeriod > 0 {
			v += amp * math.Sin(2*math.Pi*float64(i)/float64(s.SeasonPeriod)+phase)
		}
		if burstLeft > 0 {
			v += sigma * s.BurstScale * studentT(rng, s.BurstDF)
			burstLeft--
			kind = Burst
		} else {
			v += sigma * rng.NormFloat64()
		}
		if shiftLeft > 0 {
			shiftLeft--
			kind = Shift
		}
		// The spike draw happens for every value so that the random
		// sequence does not depend on the other anomalies.
		u := rng.Float64()
		up := rng.Float64() < s.UpShare
		var size float64
		if up {
			size = s.Up.draw(rng)
		} else {
			size = s.Down.draw(rng)
		}
		if u < s.SpikeRate && kind == Normal {
			if s.SizesInSigma {
				size *= sigma
			}
			if up {
				v += size
				kind = Spike
			} else {
				v -= size
				kind = Dip
			}
		}
		if s.ClipAtZero && v < 0 {
			v = 0
		}
		st.Values[i] = v
		st.Kinds[i] = kind
	}
	return st
}

// studentT draws from Student's t distribution with df degrees of freedom.
func studentT(rng *rand.Rand, df int) float64 {
	var chi2 float64
	for k := 0; k < df; k++ {
		z := rng.NormFloat64()
		chi2 += z * z
	}
	return rng.NormFloat64() / math.Sqrt(chi2/float64(df))
}
