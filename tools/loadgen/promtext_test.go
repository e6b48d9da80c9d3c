package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"
)

const page = `# HELP pulse_end_to_end_latency_seconds Time from ingest receiving an event to its analysis being written.
# TYPE pulse_end_to_end_latency_seconds histogram
pulse_end_to_end_latency_seconds_bucket{le="0.001"} 10
pulse_end_to_end_latency_seconds_bucket{le="0.0025"} 30
pulse_end_to_end_latency_seconds_bucket{le="0.005"} 80
pulse_end_to_end_latency_seconds_bucket{le="0.01"} 100
pulse_end_to_end_latency_seconds_bucket{le="+Inf"} 100
pulse_end_to_end_latency_seconds_sum 0.4
pulse_end_to_end_latency_seconds_count 100
pulse_shard_lag{shard="0"} 5
pulse_shard_lag{shard="3"} 7
http_requests_total{code="202",method="POST",route="/metrics",service="ingest"} 1.5e+06
weird{a="x\"y\\z\nw",b=""} -Inf 1700000000000
pulse_events_processed_total 123
`

func TestParseText(t *testing.T) {
	m, err := ParseText(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want map[string]string
		sum  float64
	}{
		{"pulse_shard_lag", nil, 12},
		{"pulse_shard_lag", map[string]string{"shard": "3"}, 7},
		{"http_requests_total", map[string]string{"route": "/metrics", "code": "202"}, 1.5e6},
		{"http_requests_total", map[string]string{"code": "503"}, 0},
		{"pulse_events_processed_total", nil, 123},
	}
	for _, tt := range tests {
		if got := m.Sum(tt.name, tt.want); got != tt.sum {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.want, got, tt.sum)
		}
	}
	var weird Sample
	for _, s := range m {
		if s.Name == "weird" {
			weird = s
		}
	}
	if weird.Labels["a"] != "x\"y\\z\nw" || weird.Labels["b"] != "" || !math.IsInf(weird.Value, -1) {
		t.Errorf("weird = %+v", weird)
	}
}

func TestParseTextRejectsGarbage(t *testing.T) {
	for _, s := range []string{"name{a=\"x\"", "name{a=x} 1", "name", "name{} abc"} {
		if _, err := ParseText(strings.NewReader(s)); err == nil {
			t.Errorf("ParseText(%q) succeeded", s)
		}
	}
}

func TestBucketQuantile(t *testing.T) {
	m, err := ParseText(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	b := m.Buckets("pulse_end_to_end_latency_seconds")
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
	over := []Bucket{{0.05, 90}, {math.Inf(1), 100}}
	if got := BucketQuantile(0.99, over); got != 0.05 {
		t.Errorf("q0.99 in +Inf = %v, want 0.05", got)
	}
	if got := BucketQuantile(0.5, nil); !math.IsNaN(got) {
		t.Errorf("quantile of nothing = %v, want NaN", got)
	}
}

func TestBucketArithmetic(t *testing.T) {
	before := []Bucket{{0.01, 5}, {0.1, 8}, {math.Inf(1), 10}}
	after := []Bucket{{0.01, 15}, {0.1, 28}, {math.Inf(1), 30}}
	d := SubBuckets(after, before)
	if d[0].Count != 10 || d[1].Count != 20 || d[2].Count != 20 || BucketTotal(d) != 20 {
		t.Errorf("after - before = %v", d)
	}
	s := AddBuckets(AddBuckets(nil, before), after)
	if s[0].Count != 20 || s[2].Count != 40 {
		t.Errorf("before + after = %v", s)
	}
}

func TestParseProcFiles(t *testing.T) {
	stat := []byte("4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n")
	if got, err := parseStatCPU(stat); err != nil || got != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s", got, err)
	}
	procStat := []byte("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 0 0\n")
	m, err := parseMachineCPU(procStat)
	want := MachineTimes{Busy: 1600 * time.Millisecond, IRQ: 50 * time.Millisecond, Steal: 100 * time.Millisecond, Total: 9900 * time.Millisecond}
	if err != nil || m != want {
		t.Errorf("parseMachineCPU = %+v, %v; want %+v", m, err, want)
	}
}
