// Package nab scores anomaly detections with the rules of the Numenta
// Anomaly Benchmark (github.com/numenta/NAB, MIT): a Go port of its
// sweeper, threshold optimiser and normalisation, and readers for its
// corpus layout. The port follows nab/sweeper.py, nab/optimizer.py,
// nab/scorer.py and nab/runner.py line by line, so that it gives NAB's
// own numbers on the same result files; it is fast enough to run the
// whole optimisation in process.
package nab

import (
	"math"
	"slices"
)

// Cost is a profile's cost matrix.
type Cost struct {
	TP, FP, FN, TN float64
}

// Profile is a named scoring profile of config/profiles.json.
type Profile struct {
	Name string
	Cost Cost
}

// The profiles of NAB's config/profiles.json, in the order reports use.
var (
	Standard = Profile{"standard", Cost{TP: 1, FP: 0.11, FN: 1, TN: 1}}
	LowFP    = Profile{"reward_low_FP_rate", Cost{TP: 1, FP: 0.22, FN: 1, TN: 1}}
	LowFN    = Profile{"reward_low_FN_rate", Cost{TP: 1, FP: 0.11, FN: 2, TN: 1}}
	Profiles = []Profile{Standard, LowFP, LowFN}
)

// ProbationPercent is the share of each file (at most 5000 rows' worth)
// not scored while detectors learn (runner.py).
const ProbationPercent = 0.15

// ProbationLength is getProbationPeriod of nab/util.py: rows before this
// index are not scored.
func ProbationLength(rows int) float64 {
	return math.Min(math.Floor(ProbationPercent*float64(rows)), ProbationPercent*5000)
}

// Window is a labelled anomaly window as row indices, both inclusive.
type Window struct{ Start, End int }

// Point labels of an anomaly point beside a window index.
const (
	outside      = -1 // not in any window
	probationary = -2 // in the probationary period: not scored
)

// point is sweeper.py's AnomalyPoint without the timestamp.
type point struct {
	score  float64 // the detector's anomaly score
	sweep  float64 // the weighted score of a detection here
	window int     // a window id, outside or probationary
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// scaledSigmoid is sweeper.py's scaledSigmoid: the unweighted reward of a
// detection at a relative position in (−1, 0] of a window, or the penalty
// past it (positions > 0).
func scaledSigmoid(pos float64) float64 {
	if pos > 3.0 {
		return -1.0
	}
	return 2*sigmoid(-5*pos) - 1.0
}

// sweepPoints is Sweeper.calcSweepScore for one file: each row's weighted
// score if it were a detection, and which window it counts for. Window
// ids are firstID, firstID+1, … in the order of windows; windows must be
// sorted and disjoint.
func sweepPoints(dst []point, f File, firstID int, c Cost) []point {
	scores, windows := f.Scores, f.Windows
	maxTP := scaledSigmoid(-1.0)
	probation := f.probation()
	cur := -1 // index into windows of the window the row is in
	next := 0 // the next window to enter
	prevRight, prevWidth := -1, 0.0
	var curWidth float64
	for i, s := range scores {
		if next < len(windows) && i == windows[next].Start {
			cur = next
			next++
			curWidth = float64(windows[cur].End - windows[cur].Start + 1)
		}
		var weighted float64
		if cur >= 0 {
			pos := -float64(windows[cur].End-i+1) / curWidth
			weighted = scaledSigmoid(pos) * c.TP / maxTP
		} else {
			unweighted := -1.0
			if prevRight >= 0 {
				unweighted = scaledSigmoid(math.Abs(float64(prevRight-i)) / (prevWidth - 1))
			}
			weighted = unweighted * c.FP
		}
		win := outside
		if cur >= 0 {
			win = firstID + cur
		}
		if float64(i) < probation {
			win = probationary
		}
		dst = append(dst, point{score: s, sweep: weighted, window: win})
		if cur >= 0 && i == windows[cur].End {
			prevRight, prevWidth = i, curWidth
			cur = -1
		}
	}
	return dst
}

// Row is sweeper.py's ThresholdScore: the score and counts when every
// value at or above Threshold is a detection.
type Row struct {
	Threshold      float64
	Score          float64
	TP, TN, FP, FN int
	Total          int
}

// byThreshold is Sweeper.calcScoreByThreshold: rows for every distinct
// score, highest threshold first, starting at 1.1 (no detection at all).
// It reorders pts.
func byThreshold(pts []point, c Cost) []Row {
	pts = slices.DeleteFunc(pts, func(p point) bool { return p.window == probationary })
	slices.SortStableFunc(pts, func(a, b point) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	// scoreParts: "fp" first, then each window in order of first
	// appearance in the sorted list, as a Python dict iterates; the
	// totals are summed in that order so that they round as NAB's do.
	order := make([]int, 0, 16)
	part := map[int]float64{}
	tn, fn := 0, 0
	for _, p := range pts {
		if p.window == outside {
			tn++
			continue
		}
		fn++
		if _, ok := part[p.window]; !ok {
			part[p.window] = -c.FN
			order = append(order, p.window)
		}
	}
	fp, tp := 0, 0
	fpSum := 0.0
	total := func() float64 {
		s := fpSum
		for _, w := range order {
			s += part[w]
		}
		return s
	}
	var rows []Row
	threshold := 1.1
	for _, p := range pts {
		if p.score != threshold {
			rows = append(rows, Row{threshold, total(), tp, tn, fp, fn, tp + tn + fp + fn})
			threshold = p.score
		}
		if p.window == outside {
			fp++
			tn--
			fpSum += p.sweep
		} else {
			tp++
			fn--
			part[p.window] = math.Max(part[p.window], p.sweep)
		}
	}
	return append(rows, Row{threshold, total(), tp, tn, fp, fn, tp + tn + fp + fn})
}

// File is one scored series: its anomaly scores, one per row, and its
// labelled windows.
type File struct {
	Name    string // relative path in the corpus, e.g. "realTraffic/speed_6005.csv"
	Scores  []float64
	Windows []Window
	// Probation is how many rows at the start are not scored; NABProbation
	// (what FileOf sets) applies NAB's rule, ProbationLength.
	Probation int
}

// NABProbation asks for NAB's probationary period.
const NABProbation = -1

// FileOf is s with scores, scored as NAB scores it.
func FileOf(s *Series, scores []float64) File {
	return File{Name: s.Name, Scores: scores, Windows: s.Windows, Probation: NABProbation}
}

func (f File) probation() float64 {
	if f.Probation < 0 {
		return ProbationLength(len(f.Scores))
	}
	return float64(f.Probation)
}

// Optimize is optimizer.py's optimizeThreshold: the threshold whose
// corpus-wide score is highest (the highest such threshold on ties, as
// Python's stable sort keeps it first) and that score.
func Optimize(files []File, c Cost) Row {
	var pts []point
	id := 0
	for _, f := range files {
		pts = sweepPoints(pts, f, id, c)
		id += len(f.Windows)
	}
	rows := byThreshold(pts, c)
	best := rows[0]
	for _, r := range rows[1:] {
		if r.Score > best.Score {
			best = r
		}
	}
	return best
}

// ScoreFile is Sweeper.scoreDataSet: the file's row at threshold (rows
// with a score ≥ threshold are detections).
func ScoreFile(f File, threshold float64, c Cost) Row {
	rows := byThreshold(sweepPoints(nil, f, 0, c), c)
	var prev Row
	for _, r := range rows {
		if r.Threshold == threshold {
			return r
		}
		if r.Threshold < threshold {
			return prev
		}
		prev = r
	}
	// NAB fails here (matchingRow is None); a threshold below every
	// score detects every scored row, which is the last row.
	return rows[len(rows)-1]
}

// Normalize is runner.py's normalisation: 100 for a perfect detector,
// 0 for the null detector (baseline: its raw total), with windows the
// number of labelled windows of the corpus.
func Normalize(raw, baseline float64, windows int, c Cost) float64 {
	perfect := float64(windows) * c.TP
	return 100 * (raw - baseline) / (perfect - baseline)
}

// Result is a detector's score on a corpus under one profile.
type Result struct {
	Profile   Profile
	Threshold float64 // optimised on the whole corpus
	Raw       float64 // the sum of the files' scores at Threshold
	Score     float64 // normalised: null detector 0, perfect 100
	Files     []Row   // per file, in the order given
	Nulls     []Row   // the null detector's rows, per file
}

// Score is NAB's optimise, score and normalise steps for one profile:
// the threshold is optimised over every file at once, each file is scored
// at it, and the total is normalised with baseline, the null detector's
// raw total, and windows, the corpus's number of labelled windows.
func Score(files []File, p Profile, baseline float64, windows int) Result {
	best := Optimize(files, p.Cost)
	r := Result{Profile: p, Threshold: best.Threshold}
	for _, f := range files {
		row := ScoreFile(f, best.Threshold, p.Cost)
		r.Files = append(r.Files, row)
		r.Raw += row.Score
		r.Nulls = append(r.Nulls, NullRow(f, p.Cost))
	}
	r.Score = Normalize(r.Raw, baseline, windows, p.Cost)
	return r
}

// NullRow is the row of the null detector, which detects nothing, for f.
func NullRow(f File, c Cost) Row {
	null := f
	null.Scores = make([]float64, len(f.Scores))
	return ScoreFile(null, 1.1, c)
}

// Subset is the normalised score of some of r's files (indices into
// files), with their own null baseline and perfect score: how a
// category fares at the corpus's threshold.
func (r Result) Subset(files []File, idx []int) float64 {
	var raw, null float64
	windows := 0
	for _, i := range idx {
		raw += r.Files[i].Score
		null += r.Nulls[i].Score
		windows += len(files[i].Windows)
	}
	if windows == 0 {
		return math.NaN()
	}
	return Normalize(raw, null, windows, r.Profile.Cost)
}
