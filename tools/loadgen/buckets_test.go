package loadgen

import (
	"math"
	"testing"

	"github.com/pulse-iot/pulse/internal/promtext"
)

func TestBucketQuantile(t *testing.T) {
	b := []promtext.Bucket{
		{UpperBound: 0.001, Count: 10}, {UpperBound: 0.0025, Count: 30}, {UpperBound: 0.005, Count: 80},
		{UpperBound: 0.01, Count: 100}, {UpperBound: math.Inf(1), Count: 100},
	}
	tests := []struct{ q, want float64 }{
		{0.05, 0.0005},  // rank 5 of the first 10, in [0, 1ms]
		{0.1, 0.001},    // the first bucket's bound
		{0.5, 0.0035},   // rank 50: 20 of 50 into (2.5ms, 5ms]
		{0.9, 0.0075},   // rank 90: halfway through (5ms, 10ms]
		{0.99, 0.00975}, // rank 99
	}
	for _, tt := range tests {
		if got := BucketQuantile(tt.q, b); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("q%v = %v, want %v", tt.q, got, tt.want)
		}
	}
	if f := BucketFraction(b, 0.005); f != 0.8 {
		t.Errorf("fraction within 5ms = %v, want 0.8", f)
	}
	// Ranks in +Inf give the highest finite bound.
	over := []promtext.Bucket{{UpperBound: 0.05, Count: 90}, {UpperBound: math.Inf(1), Count: 100}}
	if got := BucketQuantile(0.99, over); got != 0.05 {
		t.Errorf("q0.99 in +Inf = %v, want 0.05", got)
	}
	if got := BucketQuantile(0.5, nil); !math.IsNaN(got) {
		t.Errorf("quantile of nothing = %v, want NaN", got)
	}
}

func TestBucketArithmetic(t *testing.T) {
	before := []promtext.Bucket{{UpperBound: 0.01, Count: 5}, {UpperBound: 0.1, Count: 8}, {UpperBound: math.Inf(1), Count: 10}}
	after := []promtext.Bucket{{UpperBound: 0.01, Count: 15}, {UpperBound: 0.1, Count: 28}, {UpperBound: math.Inf(1), Count: 30}}
	d := SubBuckets(after, before)
	if d[0].Count != 10 || d[1].Count != 20 || d[2].Count != 20 || BucketTotal(d) != 20 {
		t.Errorf("after - before = %v", d)
	}
	s := AddBuckets(AddBuckets(nil, before), after)
	if s[0].Count != 20 || s[2].Count != 40 {
		t.Errorf("before + after = %v", s)
	}
}
