package nab

import (
	"math"
	"testing"
)

// A 20-row file: rows 0–2 are probationary (15% of 20), one window, rows
// 10–13 (width 4).
func file(detections map[int]float64) File {
	s := make([]float64, 20)
	for i, v := range detections {
		s[i] = v
	}
	return File{Name: "f.csv", Scores: s, Windows: []Window{{10, 13}}, Probation: NABProbation}
}

// The expected scores are worked out by hand from sweeper.py's formulas:
// a detection at relative position x ∈ [−1, 0) of a window earns
// (2·sigmoid(−5x)−1)/(2·sigmoid(5)−1); one d rows after a window of width
// w costs fpWeight·(2·sigmoid(−5·d/(w−1))−1); with no window before, it
// costs fpWeight; a missed window costs fnWeight.
func TestScoreFile(t *testing.T) {
	tests := []struct {
		name       string
		detections map[int]float64
		cost       Cost
		want       float64
		tp, fp     int
	}{
		{"nothing: the window is missed", nil, Standard.Cost, -1, 0, 0},
		{"at the window's first row: full reward", map[int]float64{10: 1}, Standard.Cost, 1, 1, 0},
		{"at its last row: x = −1/4", map[int]float64{13: 1}, Standard.Cost, 0.5621241486, 1, 0},
		{"two in the window: the earlier counts", map[int]float64{11: 1, 12: 1}, Standard.Cost, 0.9669890878, 2, 0},
		{"3 rows after the window: FP 0.11·(2σ(−5)−1), window missed", map[int]float64{16: 1}, Standard.Cost, -1 - 0.1085275728, 0, 1},
		{"the same with low FN", map[int]float64{16: 1}, LowFN.Cost, -2 - 0.1085275728, 0, 1},
		{"before any window: FP 0.11", map[int]float64{5: 1}, Standard.Cost, -1.11, 0, 1},
		{"before any window, low FP: 0.22", map[int]float64{5: 1}, LowFP.Cost, -1.22, 0, 1},
		{"probationary rows are not scored", map[int]float64{2: 1}, Standard.Cost, -1, 0, 0},
		{"below the threshold is no detection", map[int]float64{10: 0.4}, Standard.Cost, -1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := ScoreFile(file(tt.detections), 0.5, tt.cost)
			if math.Abs(row.Score-tt.want) > 1e-9 || row.TP != tt.tp || row.FP != tt.fp {
				t.Errorf("score %.10f TP %d FP %d, want %.10f TP %d FP %d", row.Score, row.TP, row.FP, tt.want, tt.tp, tt.fp)
			}
			if row.Total != 17 {
				t.Errorf("total %d, want the 17 scored rows", row.Total)
			}
		})
	}
}

func TestProbationLength(t *testing.T) {
	for rows, want := range map[int]float64{20: 3, 4032: 604, 5000: 750, 22695: 750} {
		if got := ProbationLength(rows); got != want {
			t.Errorf("ProbationLength(%d) = %v, want %v", rows, got, want)
		}
	}
}

func TestOptimize(t *testing.T) {
	// File a: 0.9 at the window's start, 0.8 before any window. File b:
	// 0.7 at its window's last row, 0.6 before it. Totals by threshold:
	// 1.1: −2; 0.9: 1−1 = 0; 0.8: −0.11; 0.7: 1+0.5621−0.11 = 1.4521;
	// 0.6: 1.3421.
	a := file(map[int]float64{10: 0.9, 5: 0.8})
	b := file(map[int]float64{13: 0.7, 6: 0.6})
	best := Optimize([]File{a, b}, Standard.Cost)
	if best.Threshold != 0.7 || math.Abs(best.Score-1.4521241486) > 1e-9 {
		t.Errorf("best %+v, want threshold 0.7 score 1.4521", best)
	}
	// Dearer false positives make b's window not worth a's false positive.
	best = Optimize([]File{a, b}, Cost{TP: 1, FP: 2, FN: 1})
	if best.Threshold != 0.9 || best.Score != 0 {
		t.Errorf("best %+v, want threshold 0.9 score 0", best)
	}
	// Scoring each file at the optimum gives the optimum's total.
	r := Score([]File{a, b}, Standard, -2, 2)
	if r.Threshold != 0.7 || math.Abs(r.Raw-1.4521241486) > 1e-9 || math.Abs(r.Score-100*3.4521241486/4) > 1e-7 {
		t.Errorf("Score: %+v, want threshold 0.7, raw 1.4521, normalised 86.30", r)
	}
	// A threshold between two scores counts the scores above it.
	if row := ScoreFile(a, 0.85, Standard.Cost); row.TP != 1 || row.FP != 0 || row.Score != 1 {
		t.Errorf("threshold 0.85: %+v", row)
	}
}

func TestNormalize(t *testing.T) {
	for _, tt := range []struct{ raw, want float64 }{{-116, 0}, {116, 100}, {0, 50}} {
		if got := Normalize(tt.raw, -116, 116, Standard.Cost); got != tt.want {
			t.Errorf("Normalize(%v) = %v, want %v", tt.raw, got, tt.want)
		}
	}
	if got := NullRow(file(nil), LowFN.Cost).Score; got != -2 {
		t.Errorf("null detector on a low FN profile: %v, want −2", got)
	}
}

func TestPairwiseSum(t *testing.T) {
	// numpy's sum of 1000 × 0.1 is 100.00000000000001; a running sum gives
	// 99.9999999999986.
	v := make([]float64, 1000)
	for i := range v {
		v[i] = 0.1
	}
	if got := pairwiseSum(v); got != 100.00000000000001 {
		t.Errorf("pairwiseSum(1000 × 0.1) = %v, numpy: 100.00000000000001", got)
	}
	// numpy.std(0.37 × (1…6400)) = 683.5827103760012.
	w := make([]float64, 6400)
	for i := range w {
		w[i] = float64(i+1) * 0.37
	}
	scores := WindowedGaussian(append(w, 0))
	// The last value is scored against the window: mean 1184.185.
	want := 1 - 0.5*math.Erfc((1184.185-0)/683.5827103760012/math.Sqrt2)
	if scores[6400] != want {
		t.Errorf("windowed Gaussian score %v, want %v", scores[6400], want)
	}
}
