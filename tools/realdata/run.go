// Package realdata runs Pulse's per-value detector, anomaly scores and
// alerts over labelled real-world corpora — the Numenta Anomaly Benchmark
// (NAB) and the Application Server Dataset (ASD) — in process, and scores
// the alerts with NAB's rules (package nab).
package realdata

import (
	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/score"
)

// Config is the pipeline's configuration for a run.
type Config struct {
	Detector detector.Params // the per-value rule (robust)
	Score    score.Params
	Alert    alert.Params
}

// DefaultConfig is the services' defaults.
func DefaultConfig() Config {
	return Config{
		Detector: detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2},
		Score:    score.DefaultParams(),
		Alert:    alert.DefaultParams(),
	}
}

// Trace is what the detector and the score layer give each value of one
// signal; alerts are derived from it for any alert parameters.
type Trace struct {
	Times  []float64
	Values []float64
	Scores []float64
	Z      []float64
	Low    []float64
	High   []float64
}

// RunSignal passes one signal through the per-value detector and the score
// layer, as the analyzer does for each value of a device.
func RunSignal(cfg Config, times, values []float64) Trace {
	det := detector.NewRobust(cfg.Detector)
	w := detector.NewWindow(cfg.Detector.WindowSize)
	var st score.State
	n := len(values)
	tr := Trace{Times: times, Values: values, Scores: make([]float64, n), Z: make([]float64, n),
		Low: make([]float64, n), High: make([]float64, n)}
	for i, x := range values {
		r := det.Observe(w, x)
		s := cfg.Score.Observe(&st, times[i], x)
		tr.Scores[i], tr.Z[i], tr.Low[i], tr.High[i] = s.Score, r.Z, s.Low, s.High
	}
	return tr
}

// Openings returns, for each value of tr, the score of the alert it
// opened, or 0: the detections of a NAB results file. It adds to dst
// (max of the two) when dst is not nil, so that several signals of one
// device make one device-level series of detections.
func Openings(dst []float64, tr Trace, p alert.Params) []float64 {
	if dst == nil {
		dst = make([]float64, len(tr.Scores))
	}
	var st alert.State
	for i := range tr.Scores {
		in := alert.Input{Time: tr.Times[i], Value: tr.Values[i], Score: tr.Scores[i], Z: tr.Z[i], Low: tr.Low[i], High: tr.High[i]}
		if p.Step(&st, in) == alert.Opened {
			dst[i] = max(dst[i], st.Alert.Score)
		}
	}
	return dst
}
