package detector

// Window holds the last size values of one signal, oldest first, in a
// fixed ring so that pushing never allocates.
type Window struct {
	vals  []float64
	start int // index of the oldest value
	n     int
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
}

// MeanStdDev returns the mean and population standard deviation (divided
// by n) of the window, in two passes so that the result is exactly what a
// naive computation over the same values gives. An empty window gives 0, 0.
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
	return mean, sqrt(sq / float64(w.n))
}
