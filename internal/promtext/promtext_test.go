package promtext

import (
	"math"
	"reflect"
	"strings"
	"testing"
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
# TYPE pulse_redis_duration_seconds histogram
pulse_redis_duration_seconds_bucket{op="xadd",le="0.01"} 4
pulse_redis_duration_seconds_bucket{op="xadd",le="+Inf"} 5
pulse_redis_duration_seconds_sum{op="xadd"} 0.02
pulse_redis_duration_seconds_count{op="xadd"} 5
pulse_redis_duration_seconds_bucket{op="get",le="0.01"} 1
pulse_redis_duration_seconds_bucket{op="get",le="+Inf"} 2
pulse_redis_duration_seconds_sum{op="get"} 0.5
pulse_redis_duration_seconds_count{op="get"} 2
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.001
go_gc_duration_seconds_sum 0.01
go_gc_duration_seconds_count 7
# TYPE pulse_shard_lag gauge
pulse_shard_lag{shard="0"} 5
pulse_shard_lag{shard="3"} 7
pulse_shard_lag{shard="9"} NaN
# TYPE http_requests_total counter
http_requests_total{code="202",method="POST",route="/metrics",service="ingest"} 1.5e+06
http_requests_total{code="400",method="POST",route="/metrics",service="ingest"} 2
weird{a="x\"y\\z\nw",b=""} -Inf 1700000000000
pulse_events_processed_total 123
`

func TestValueAndSum(t *testing.T) {
	m, err := Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	values := []struct {
		name   string
		labels map[string]string
		want   float64
		ok     bool
	}{
		{"pulse_events_processed_total", nil, 123, true},
		{"pulse_shard_lag", map[string]string{"shard": "3"}, 7, true},
		{"pulse_shard_lag", nil, 0, false}, // exact labels: none has none
		{"pulse_shard_lag", map[string]string{"shard": "1"}, 0, false},
		{"http_requests_total", map[string]string{"code": "202"}, 0, false}, // a subset is not the series
		{"http_requests_total", map[string]string{"code": "400", "method": "POST", "route": "/metrics", "service": "ingest"}, 2, true},
		{"pulse_end_to_end_latency_seconds_count", nil, 100, true},
		{"pulse_end_to_end_latency_seconds_bucket", map[string]string{"le": "0.005"}, 80, true},
		{"pulse_redis_duration_seconds_sum", map[string]string{"op": "get"}, 0.5, true},
		{"go_gc_duration_seconds", map[string]string{"quantile": "0.5"}, 0.001, true},
		{"go_gc_duration_seconds_count", nil, 7, true},
		{"absent", nil, 0, false},
	}
	for _, tt := range values {
		if v, ok := m.Value(tt.name, tt.labels); v != tt.want || ok != tt.ok {
			t.Errorf("Value(%s, %v) = %v, %v; want %v, %v", tt.name, tt.labels, v, ok, tt.want, tt.ok)
		}
	}
	if v, ok := m.Value("pulse_shard_lag", map[string]string{"shard": "9"}); !ok || !math.IsNaN(v) {
		t.Errorf("NaN sample = %v, %v", v, ok)
	}
	if v, ok := Value(t, page, "weird", map[string]string{"a": "x\"y\\z\nw", "b": ""}); !ok || !math.IsInf(v, -1) {
		t.Errorf("escaped labels, -Inf, a timestamp: %v, %v", v, ok)
	}

	sums := []struct {
		name string
		want map[string]string
		sum  float64
	}{
		{"pulse_shard_lag", map[string]string{"shard": "0"}, 5},
		{"http_requests_total", map[string]string{"route": "/metrics", "method": "POST"}, 1.5e6 + 2},
		{"http_requests_total", map[string]string{"code": "503"}, 0},
		{"pulse_redis_duration_seconds_count", nil, 7},
		{"pulse_events_processed_total", map[string]string{"absent": ""}, 123},
	}
	for _, tt := range sums {
		if got := m.Sum(tt.name, tt.want); got != tt.sum {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.want, got, tt.sum)
		}
	}
	if !m.Has("pulse_events_processed_total") || !m.Has("pulse_end_to_end_latency_seconds_sum") || m.Has("pulse_end_to_end_latency_seconds") {
		t.Error("Has: wrong")
	}
}

func TestBuckets(t *testing.T) {
	m, err := Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := []Bucket{{0.001, 10}, {0.0025, 30}, {0.005, 80}, {0.01, 100}, {math.Inf(1), 100}}
	if got := m.Buckets("pulse_end_to_end_latency_seconds"); !reflect.DeepEqual(got, want) {
		t.Errorf("Buckets = %v, want %v", got, want)
	}
	if got := m.Buckets("pulse_redis_duration_seconds"); !reflect.DeepEqual(got, []Bucket{{0.01, 5}, {math.Inf(1), 7}}) {
		t.Errorf("Buckets over every op = %v", got)
	}
	if got := m.BucketsWhere("pulse_redis_duration_seconds", map[string]string{"op": "get"}); !reflect.DeepEqual(got, []Bucket{{0.01, 1}, {math.Inf(1), 2}}) {
		t.Errorf("BucketsWhere op=get = %v", got)
	}
	if got := m.Buckets("absent"); len(got) != 0 {
		t.Errorf("Buckets of nothing = %v", got)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, s := range []string{"name{a=\"x\"\n", "name{a=x} 1\n", "name\n", "name{} abc\n", "name 1\nname 2\n# TYPE name counter\n"} {
		if _, err := Parse(strings.NewReader(s)); err == nil {
			t.Errorf("Parse(%q) succeeded", s)
		}
	}
}
