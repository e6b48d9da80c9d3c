package nab

import "math"

// WindowedGaussian returns the anomaly scores of NAB's windowedGaussian
// detector (nab/detectors/gaussian): each value's two-sided Gaussian
// probability under the mean and σ of up to 6400 previous values, the
// window sliding in steps of 100. It is here to check the harness: its
// NAB scores are published (39.65 standard, 20.87 low FP, 47.41 low FN).
// Sums are numpy's pairwise sums so that means and σ round as numpy's.
func WindowedGaussian(values []float64) []float64 {
	const windowSize, stepSize = 6400, 100
	scores := make([]float64, len(values))
	window := make([]float64, 0, windowSize+stepSize)
	var step []float64
	mean, std := 0.0, 1.0
	update := func() {
		n := float64(len(window))
		mean = pairwiseSum(window) / n
		dev := make([]float64, len(window))
		for i, v := range window {
			d := math.Abs(v - mean)
			dev[i] = d * d
		}
		std = math.Sqrt(pairwiseSum(dev) / n)
		if std == 0 {
			std = 0.000001
		}
	}
	for i, x := range values {
		if len(window) > 0 {
			scores[i] = 1 - normalProbability(x, mean, std)
		}
		if len(window) < windowSize {
			window = append(window, x)
			update()
			continue
		}
		step = append(step, x)
		if len(step) == stepSize {
			window = append(window[:0:0], window[stepSize:]...)
			window = append(window, step...)
			step = step[:0]
			update()
		}
	}
	return scores
}

// normalProbability is the Gaussian tail P(X > x), mirrored below the mean.
func normalProbability(x, mean, std float64) float64 {
	if x < mean {
		x = 2*mean - x
	}
	z := (x - mean) / std
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// pairwiseSum is numpy's pairwise summation of float64 (add.reduce on a
// contiguous array): blocks of up to 128 values summed with 8
// accumulators, halves (multiples of 8) summed recursively.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		s := 0.0
		for _, v := range a {
			s += v
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range r {
				r[j] += a[i+j]
			}
		}
		s := (r[0] + r[1]) + (r[2] + r[3]) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	}
	n2 := n / 2
	n2 -= n2 % 8
	return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
}
