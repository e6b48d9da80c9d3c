package loadgen

import (
	"math"

	"github.com/pulse-iot/pulse/internal/promtext"
)

// The arithmetic of scraped histograms (promtext.Metrics.Buckets): the
// observations between two scrapes, several processes added up, and
// quantiles estimated as Prometheus does.

// AddBuckets returns a + b, bucket by bucket (same bounds, e.g. the same
// histogram of two processes); a nil a gives b.
func AddBuckets(a, b []promtext.Bucket) []promtext.Bucket {
	if a == nil {
		return append([]promtext.Bucket(nil), b...)
	}
	out := append([]promtext.Bucket(nil), a...)
	for i := range out {
		if i < len(b) && b[i].UpperBound == out[i].UpperBound {
			out[i].Count += b[i].Count
		}
	}
	return out
}

// SubBuckets returns after - before, bucket by bucket: the observations
// made between two scrapes of the same histogram.
func SubBuckets(after, before []promtext.Bucket) []promtext.Bucket {
	out := append([]promtext.Bucket(nil), after...)
	for i := range out {
		for _, b := range before {
			if b.UpperBound == out[i].UpperBound {
				out[i].Count -= b.Count
			}
		}
	}
	return out
}

// BucketTotal returns the number of observations (the +Inf bucket's count).
func BucketTotal(b []promtext.Bucket) float64 {
	if len(b) == 0 {
		return 0
	}
	return b[len(b)-1].Count
}

// BucketFraction returns the fraction of observations at most le, where
// le is one of the bucket bounds (else the next smaller bound is used).
func BucketFraction(b []promtext.Bucket, le float64) float64 {
	total := BucketTotal(b)
	if total == 0 {
		return 0
	}
	var c float64
	for _, bk := range b {
		if bk.UpperBound <= le {
			c = bk.Count
		}
	}
	return c / total
}

// BucketQuantile estimates quantile q from cumulative buckets as
// Prometheus's histogram_quantile does: linear interpolation inside the
// bucket holding rank q·n, the lowest bucket starting at 0, and the upper
// bound of the highest finite bucket when the rank falls in +Inf. It
// returns NaN without observations.
func BucketQuantile(q float64, b []promtext.Bucket) float64 {
	total := BucketTotal(b)
	if total == 0 || len(b) == 0 {
		return math.NaN()
	}
	rank := q * total
	var prevBound, prevCount float64
	for i, bk := range b {
		if bk.Count >= rank {
			if math.IsInf(bk.UpperBound, 1) {
				if i == 0 {
					return math.NaN()
				}
				return b[i-1].UpperBound
			}
			in := bk.Count - prevCount
			if in <= 0 {
				return bk.UpperBound
			}
			return prevBound + (bk.UpperBound-prevBound)*(rank-prevCount)/in
		}
		prevBound, prevCount = bk.UpperBound, bk.Count
	}
	return b[len(b)-1].UpperBound
}
