// Package alert turns a signal's per-value anomaly scores into alerts: an
// alert opens when the score reaches a threshold, stays open while the
// signal stays unusual, and closes once it has been back to normal for a
// number of consecutive values. It is pure and deterministic: the same
// inputs in the same order give the same alerts, so alerts can be
// recomputed from a device's state after a restart or a takeover.
package alert

import (
	"fmt"
	"math"
)

// Defaults. Threshold is the score threshold that maximises NAB's
// standard profile on the pipeline's alerts (make nab); Recovery is a few
// values: long enough that the quiet values between the bursts of one
// episode do not close it (8 values is 40 minutes at one value every 5
// minutes), short enough that a real second episode opens its own alert.
const (
	DefaultThreshold = 0.32
	DefaultRecovery  = 8
)

// Params are the alert layer's knobs.
type Params struct {
	// Threshold opens an alert when a value's score is at or above it,
	// in (0, 1].
	Threshold float64
	// Recovery is how many consecutive normal values close an alert.
	Recovery int
}

// DefaultParams returns the defaults.
func DefaultParams() Params { return Params{Threshold: DefaultThreshold, Recovery: DefaultRecovery} }

// Validate reports a knob out of range.
func (p Params) Validate() error {
	if !(p.Threshold > 0 && p.Threshold <= 1) {
		return fmt.Errorf("alert threshold %v: want a score in (0, 1]", p.Threshold)
	}
	if p.Recovery < 1 || p.Recovery > math.MaxUint16 {
		return fmt.Errorf("alert recovery %d: want 1–%d values", p.Recovery, math.MaxUint16)
	}
	return nil
}

// normal is the score below which a value counts as back to normal while
// an alert is open: half the threshold. Scores are log-scaled
// probabilities, so this asks for the square root of the opening
// probability: a value that is still clearly unusual keeps the alert open
// (no flapping around the threshold), an ordinary one counts toward
// recovery.
func (p Params) normal() float64 { return p.Threshold / 2 }

// Input is one analyzed value of a signal.
type Input struct {
	Time  float64 // the metric's timestamp, Unix seconds
	Value float64
	Score float64 // in [0, 1]
	Z     float64 // the per-value detector's z
	Low   float64 // the band the detector expected the value in
	High  float64
}

// Alert is one episode of a signal.
type Alert struct {
	Open     bool
	OpenedAt float64 // the opening value's timestamp
	ClosedAt float64 // the closing value's timestamp; 0 while open
	Score    float64 // the opening value's score, z, value and expected band
	Z        float64
	Value    float64
	Low      float64
	High     float64
	Events   uint32 // values the episode spanned, the opening and closing ones included
}

// State is a signal's alert state: the current or last alert and the
// count of consecutive normal values while one is open.
type State struct {
	Alert  Alert
	normal uint16
}

// Change is what a value did to the alert.
type Change uint8

// Changes.
const (
	None Change = iota
	Opened
	Closed
)

func (c Change) String() string {
	switch c {
	case Opened:
		return "opened"
	case Closed:
		return "closed"
	}
	return "none"
}

// Step applies one value and reports whether it opened or closed the
// alert; st.Alert is then the alert it opened or closed (or the one still
// open). A value with a NaN score counts as normal.
func (p Params) Step(st *State, in Input) Change {
	a := &st.Alert
	if !a.Open {
		if !(in.Score >= p.Threshold) {
			return None
		}
		*a = Alert{Open: true, OpenedAt: in.Time, Score: in.Score, Z: in.Z, Value: in.Value,
			Low: in.Low, High: in.High, Events: 1}
		st.normal = 0
		return Opened
	}
	if a.Events < math.MaxUint32 {
		a.Events++
	}
	if in.Score >= p.normal() {
		st.normal = 0
		return None
	}
	if st.normal < math.MaxUint16 {
		st.normal++
	}
	if int(st.normal) < p.Recovery {
		return None
	}
	a.Open = false
	a.ClosedAt = in.Time
	st.normal = 0
	return Closed
}
