// Package detector scores metric values against a device's recent history.
// Detectors are pure: no I/O, no clock, no allocation per value, so results
// depend only on the sequence of values a device produced.
package detector

import (
	"fmt"
	"math"
)

// Result is the score of one value.
type Result struct {
	Z       float64 // 0 when the detector had too little history to judge
	Mean    float64 // the centre the value was compared with
	StdDev  float64 // the spread the value was compared with
	Anomaly bool
}

// Detector scores a new value and records it in the window.
// Implementations may keep scratch space, so one Detector must not be used
// by two goroutines at once.
type Detector interface {
	Name() string
	Observe(w *Window, x float64) Result
}

// Params are the knobs every detector shares.
type Params struct {
	WindowSize int     // values kept per device and signal
	MinSamples int     // values needed before anything is judged
	Threshold  float64 // |z| above this is an anomaly
}

// Names lists the detectors New knows, the recommended default first.
var Names = []string{"robust", "classic"}

// New returns the detector called name.
func New(name string, p Params) (Detector, error) {
	switch name {
	case "robust":
		return NewRobust(p), nil
	case "classic":
		return Classic{p: p}, nil
	}
	return nil, fmt.Errorf("unknown detector %q (known: %v)", name, Names)
}

// Factory checks name once and returns a constructor of detectors of
// that kind: each shard worker needs its own, since detectors keep
// scratch space.
func Factory(name string, p Params) (func() Detector, error) {
	if _, err := New(name, p); err != nil {
		return nil, err
	}
	return func() Detector {
		d, _ := New(name, p) // name checked above
		return d
	}, nil
}

// Classic is the original service's rule applied per device: the value is
// first appended to the window, then compared with the window's mean and
// population standard deviation.
type Classic struct{ p Params }

var _ Detector = Classic{}

// Name implements Detector.
func (Classic) Name() string { return "classic" }

// Observe implements Detector.
func (c Classic) Observe(w *Window, x float64) Result {
	w.Push(x)
	mean, sd := w.MeanStdDev()
	r := Result{Mean: mean, StdDev: sd}
	if w.Len() >= c.p.MinSamples && sd > 0 {
		r.Z = (x - mean) / sd
		r.Anomaly = math.Abs(r.Z) > c.p.Threshold
	}
	return r
}

func sqrt(x float64) float64 { return math.Sqrt(x) }
