package detector

import (
	"cmp"
	"math"
	"slices"
)

// Window holds the last size values of one signal, oldest first, in a
// fixed ring so that pushing never allocates.
type Window struct {
	vals  []float64
	start int // index of the oldest value
	n     int
	// sorted holds the same values in ascending order (−0 before +0) once
	// Sorted has been called, kept up to date by Push with one memmove per
	// value: the robust detector's median and MAD then cost O(1) and
	// O(size/2) instead of two selections per value. Reset drops it.
	sorted   []float64
	sortedOK bool
}

// NewWindow returns an empty window that keeps the last size values.
func NewWindow(size int) *Window {
	if size < 1 {
		size = 1
	}
	return &Window{vals: make([]float64, size)}
}

// Len is how many values the window holds now.
func (w *Window) Len() int { return w.n }

// At returns the i-th value, oldest first (0 ≤ i < Len()).
func (w *Window) At(i int) float64 {
	j := w.start + i
	if j >= len(w.vals) {
		j -= len(w.vals)
	}
	return w.vals[j]
}

// Push appends x, dropping the oldest value when the window is full.
func (w *Window) Push(x float64) {
	if w.sortedOK && w.n == len(w.vals) {
		old := w.vals[w.start]
		i, _ := slices.BinarySearchFunc(w.sorted, old, compareTotal)
		if i < len(w.sorted) && math.Float64bits(w.sorted[i]) == math.Float64bits(old) {
			w.sorted = append(w.sorted[:i], w.sorted[i+1:]...)
		} else {
			w.sortedOK = false // a NaN from a damaged state: Sorted sorts again
		}
	}
	if w.sortedOK {
		i, _ := slices.BinarySearchFunc(w.sorted, x, compareTotal)
		w.sorted = append(w.sorted, 0)
		copy(w.sorted[i+1:], w.sorted[i:])
		w.sorted[i] = x
	}
	if w.n < len(w.vals) {
		j := w.start + w.n
		if j >= len(w.vals) {
			j -= len(w.vals)
		}
		w.vals[j] = x
		w.n++
		return
	}
	w.vals[w.start] = x
	w.start++
	if w.start == len(w.vals) {
		w.start = 0
	}
}

// AppendValues appends the window's values, oldest first, to dst.
func (w *Window) AppendValues(dst []float64) []float64 {
	for i := 0; i < w.n; i++ {
		dst = append(dst, w.At(i))
	}
	return dst
}

// Reset empties the window and refills it with vals (oldest first); when
// vals holds more than Cap() values only the newest are kept.
func (w *Window) Reset(vals []float64) {
	w.start, w.n = 0, 0
	if len(vals) > len(w.vals) {
		vals = vals[len(vals)-len(w.vals):]
	}
	w.n = copy(w.vals, vals)
	w.sortedOK = false
}

// Sorted returns the window's values in ascending order, −0 before +0
// (the caller must not modify them). The first call after NewWindow or
// Reset sorts; Push keeps the order from then on.
func (w *Window) Sorted() []float64 {
	if !w.sortedOK {
		if cap(w.sorted) < len(w.vals) {
			w.sorted = make([]float64, 0, len(w.vals))
		}
		w.sorted = w.AppendValues(w.sorted[:0])
		slices.Sort(w.sorted)
		orderZeros(w.sorted)
		w.sortedOK = true
	}
	return w.sorted
}

// segments are the window's values, oldest first, as at most two slices
// of its ring.
func (w *Window) segments() (first, second []float64) {
	if end := w.start + w.n; end <= len(w.vals) {
		return w.vals[w.start:end], nil
	}
	return w.vals[w.start:], w.vals[:w.start+w.n-len(w.vals)]
}

// orderZeros puts the −0s of an ascending slice before its +0s (sorting
// treats them as equal). slices.Sort and this pass take about 0.3 µs less
// for 50 values than slices.SortFunc with compareTotal.
func orderZeros(sorted []float64) {
	i, _ := slices.BinarySearch(sorted, 0)
	j := i
	negative := 0
	for ; j < len(sorted) && sorted[j] == 0; j++ {
		negative += int(math.Float64bits(sorted[j]) >> 63)
	}
	for k := i; k < j; k++ {
		sorted[k] = 0
		if k-i < negative {
			sorted[k] = math.Copysign(0, -1)
		}
	}
}

// compareTotal orders floats ascending with −0 before +0, so that equal
// values under it are the same bits (a window never holds a NaN).
func compareTotal(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return cmp.Compare(math.Float64bits(b)>>63, math.Float64bits(a)>>63)
}

// MeanStdDev returns the mean and population standard deviation (divided
// by n) of the window, in two passes so that the result is exactly what a
// naive computation over the same values gives. An empty window gives 0, 0.
// Values near float64's limit (|x| above about 1e154) would overflow the
// sums or squares: then the values are scaled by a power of two first, so
// the result stays finite (and exact but for the scaling's rounding).
func (w *Window) MeanStdDev() (mean, stddev float64) {
	if w.n == 0 {
		return 0, 0
	}
	var sum float64
	for i := 0; i < w.n; i++ {
		sum += w.At(i)
	}
	mean = sum / float64(w.n)
	var sq float64
	for i := 0; i < w.n; i++ {
		d := w.At(i) - mean
		sq += d * d
	}
	stddev = sqrt(sq / float64(w.n))
	if finite(mean) && finite(stddev) {
		return mean, stddev
	}
	big := 0.0
	for i := 0; i < w.n; i++ {
		big = max(big, math.Abs(w.At(i)))
	}
	if !finite(big) {
		return mean, stddev // the window holds a NaN or an infinity
	}
	// The same over the values times a power of two (exact products).
	e := math.Ilogb(big)
	scale := math.Ldexp(1, -e)
	sum = 0
	for i := 0; i < w.n; i++ {
		sum += w.At(i) * scale
	}
	mean = sum / float64(w.n)
	sq = 0
	for i := 0; i < w.n; i++ {
		d := w.At(i)*scale - mean
		sq += d * d
	}
	return math.Ldexp(mean, e), math.Ldexp(sqrt(sq/float64(w.n)), e)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
