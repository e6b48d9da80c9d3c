// Package eval measures anomaly detectors on labelled synthetic streams
// (package synth): precision, recall, F1, false-positive rate, detection
// delay of level shifts and a sweep of the threshold, rendered as a
// Markdown report and an SVG plot.
//
// How values are counted:
//   - The first MinSamples values of every stream are warm-up: no detector
//     judges all of them, so none is counted.
//   - A value labelled anomalous (any kind but Normal) is a positive; a
//     flagged positive is a true positive, an unflagged one a false negative.
//   - A Normal value is a negative; flagged, it is a false positive.
//   - After a level shift the first synth.ShiftSpan values are positives.
//     The Normal values after them, until the detector's window has turned
//     over (WindowSize values after the shift), are "settling": they are
//     counted apart (how many a detector flags per shift) and neither as
//     negatives nor as positives, since whether a window should already
//     treat a new level as normal is a choice, not a fact.
//
// The false-positive rate is FP / (FP + TN), the share of normal values
// flagged; it is not 1 − precision.
package eval

import "math"

// Counts is a confusion matrix plus the values kept out of it.
type Counts struct {
	TP, FP, TN, FN int
	Warmup         int // values before MinSamples, not counted
	Settling       int // normal values settling after a level shift
	SettlingFlags  int // of those, how many were flagged
}

// Add counts one judged value.
func (c *Counts) Add(anomaly, flagged bool) {
	switch {
	case anomaly && flagged:
		c.TP++
	case anomaly:
		c.FN++
	case flagged:
		c.FP++
	default:
		c.TN++
	}
}

// Merge adds o to c.
func (c *Counts) Merge(o Counts) {
	c.TP += o.TP
	c.FP += o.FP
	c.TN += o.TN
	c.FN += o.FN
	c.Warmup += o.Warmup
	c.Settling += o.Settling
	c.SettlingFlags += o.SettlingFlags
}

// Positives is the number of anomalous values counted.
func (c Counts) Positives() int { return c.TP + c.FN }

// Negatives is the number of normal values counted.
func (c Counts) Negatives() int { return c.FP + c.TN }

// ratio is a/b, or NaN when b is 0 (the rate is undefined).
func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// Precision is TP / (TP + FP): the share of flags that are anomalies.
// NaN when nothing was flagged.
func (c Counts) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is TP / (TP + FN): the share of anomalies flagged. NaN when there
// are no anomalies.
func (c Counts) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

// FPR is FP / (FP + TN): the share of normal values flagged. NaN when there
// are no normal values.
func (c Counts) FPR() float64 { return ratio(c.FP, c.FP+c.TN) }

// F1 is the harmonic mean of precision and recall, 2TP / (2TP + FP + FN).
// NaN when there are no anomalies; 0 when there are but none was caught.
func (c Counts) F1() float64 {
	if c.TP+c.FN == 0 {
		return math.NaN()
	}
	return ratio(2*c.TP, 2*c.TP+c.FP+c.FN)
}

// SettlingFlagsPerShift is the mean number of settling values flagged per
// level shift.
func (c Counts) SettlingFlagsPerShift(shifts int) float64 {
	return ratio(c.SettlingFlags, shifts)
}

// Delays summarises how long a detector took to flag level shifts. The
// delay of a shift is the number of values at the new level before the first
// flagged one: 0 when the first value at the new level is flagged. A shift
// not flagged before the window turns over (or the next shift) is missed.
type Delays struct {
	Shifts   int   // level shifts seen
	Detected int   // flagged before the window turned over
	Sum      int   // sum of the delays of the detected shifts
	Max      int   // largest delay of a detected shift
	Hist     []int // Hist[d] = detected shifts with delay d

	Big       int // shifts of at least BigShift σ
	BigWithin int // of those, detected with a delay below DelayTarget
}

// BigShift is the smallest shift, in σ, the delay target applies to.
const BigShift = 4.0

// DelayTarget is the number of values within which a shift of at least
// BigShift σ should be flagged: the delay must be below it.
const DelayTarget = 3

// Add records one shift with size sigmas and delay (−1 when missed).
func (d *Delays) Add(size float64, delay int) {
	d.Shifts++
	big := math.Abs(size) >= BigShift
	if big {
		d.Big++
	}
	if delay < 0 {
		return
	}
	d.Detected++
	d.Sum += delay
	if delay > d.Max {
		d.Max = delay
	}
	for len(d.Hist) <= delay {
		d.Hist = append(d.Hist, 0)
	}
	d.Hist[delay]++
	if big && delay < DelayTarget {
		d.BigWithin++
	}
}

// Merge adds o to d.
func (d *Delays) Merge(o Delays) {
	d.Shifts += o.Shifts
	d.Detected += o.Detected
	d.Sum += o.Sum
	d.Max = max(d.Max, o.Max)
	for len(d.Hist) < len(o.Hist) {
		d.Hist = append(d.Hist, 0)
	}
	for i, n := range o.Hist {
		d.Hist[i] += n
	}
	d.Big += o.Big
	d.BigWithin += o.BigWithin
}

// Mean is the mean delay of the detected shifts (NaN when none).
func (d Delays) Mean() float64 { return ratio(d.Sum, d.Detected) }

// Quantile is the smallest delay d such that at least q of the detected
// shifts have a delay ≤ d (−1 when none was detected).
func (d Delays) Quantile(q float64) int {
	if d.Detected == 0 {
		return -1
	}
	need := int(math.Ceil(q * float64(d.Detected)))
	if need < 1 {
		need = 1
	}
	seen := 0
	for delay, n := range d.Hist {
		seen += n
		if seen >= need {
			return delay
		}
	}
	return d.Max
}
