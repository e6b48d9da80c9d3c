package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: values below 2^subBits ns are
// counted exactly, larger ones in buckets 2^-subBits of their size wide, so
// a reported percentile is within 0.4% of a recorded value.
const (
	subBits    = 8
	subBuckets = 1 << subBits
	// numBuckets covers every int64 value.
	numBuckets = subBuckets + (64-subBits)*subBuckets/2
)

// Histogram counts durations in logarithmic buckets of bounded relative
// width, like HdrHistogram: constant memory, O(1) Record, percentiles
// within 0.4%. It is not safe for concurrent use: give each goroutine its
// own and Merge them.
type Histogram struct {
	counts   []uint64
	n        uint64
	sum      float64 // nanoseconds
	min, max int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf returns the bucket of a value in nanoseconds (v >= 0).
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	// Keep the top subBits bits: v>>shift is in [subBuckets/2, subBuckets).
	shift := bits.Len64(uint64(v)) - subBits
	return subBuckets + (shift-1)*subBuckets/2 + int(v>>shift) - subBuckets/2
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < subBuckets {
		return int64(i), int64(i)
	}
	k := i - subBuckets
	shift := k/(subBuckets/2) + 1
	m := int64(k%(subBuckets/2) + subBuckets/2)
	return m << shift, (m+1)<<shift - 1
}

// Record counts one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest recorded value, exactly (0 when empty).
func (h *Histogram) Max() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.max)
}

// Min returns the smallest recorded value, exactly (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean returns the mean of the recorded values (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0 < q <= 1): the value of the
// ceil(q·n)-th smallest record, to the histogram's precision (the middle
// of its bucket, within the exact minimum and maximum). 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
