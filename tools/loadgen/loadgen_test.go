package loadgen

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/metric"
)

// generate returns w's pool of bodies; w must be valid.
func generate(t *testing.T, w Workload) *Pool {
	t.Helper()
	p, err := w.Generate()
	if err != nil {
		t.Fatalf("Generate(%+v): %v", w, err)
	}
	return p
}

func TestHistogramQuantilesOfKnownData(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
	}{
		{"1..1000 µs", seq(1000, func(i int) time.Duration { return time.Duration(i+1) * time.Microsecond })},
		{"small exact values", seq(200, func(i int) time.Duration { return time.Duration(i) })},
		{"log-normal", seq(50000, func() func(int) time.Duration {
			r := rand.New(rand.NewPCG(1, 2))
			return func(int) time.Duration { return time.Duration(math.Exp(13 + 2*r.NormFloat64())) }
		}())},
		{"one value", []time.Duration{3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHistogram()
			for _, v := range tt.values {
				h.Record(v)
			}
			sorted := slices.Clone(tt.values)
			slices.Sort(sorted)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				rank := int(math.Ceil(q * float64(len(sorted))))
				want := sorted[max(rank, 1)-1]
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - want)); diff > 0.004*float64(want)+0.5 {
					t.Errorf("q%v = %v, want %v ± 0.4%%", q, got, want)
				}
			}
			if h.Max() != sorted[len(sorted)-1] || h.Min() != sorted[0] || h.Count() != uint64(len(sorted)) {
				t.Errorf("max %v min %v count %d, want %v %v %d", h.Max(), h.Min(), h.Count(), sorted[len(sorted)-1], sorted[0], len(sorted))
			}
		})
	}
}

func seq(n int, f func(int) time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestHistogramMergeEqualsRecordingAll(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := 0; i < 1000; i++ {
		v := time.Duration(i*i) * time.Microsecond
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(b)
	for _, q := range []float64{0.5, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, all %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Max() != all.Max() || a.Mean() != all.Mean() {
		t.Errorf("merged count/max/mean %d %v %v, want %d %v %v", a.Count(), a.Max(), a.Mean(), all.Count(), all.Max(), all.Mean())
	}
}

func TestHistogramBucketsCoverEveryValueOnce(t *testing.T) {
	prevHi := int64(-1)
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d, %d], previous ended at %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			return
		}
	}
	t.Fatalf("buckets end at %d, before MaxInt64", prevHi)
}

func TestScheduledSpacesRequestsEvenly(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		i    int64
		rate float64
		want time.Duration
	}{
		{0, 1000, 0},
		{1, 1000, time.Millisecond},
		{999, 1000, 999 * time.Millisecond},
		{1000, 1000, time.Second},
		{3, 5000, 600 * time.Microsecond},
		{299999, 5000, 59999800 * time.Microsecond},
		{7, 3, 2333333333},
	}
	for _, tt := range tests {
		if got := Scheduled(start, tt.i, tt.rate).Sub(start); got != tt.want {
			t.Errorf("Scheduled(%d, %v/s) = start+%v, want +%v", tt.i, tt.rate, got, tt.want)
		}
	}
	if n := (Open{Rate: 5000, Duration: 20 * time.Second}).Requests(); n != 100000 {
		t.Errorf("5000/s for 20s schedules %d requests, want 100000", n)
	}
}

func TestGeneratedBodiesDecode(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		w    Workload
	}{
		{"single events", Workload{Devices: 50, Batch: 1, Bodies: 200, Prefix: "bench", Seed: 1, Now: now}},
		{"batches of 100", Workload{Devices: 30, Batch: 100, Bodies: 6, Prefix: "gw.7", Seed: 2, Now: now}},
		{"batches of 1000", Workload{Devices: 2000, Batch: 1000, Bodies: 6, Prefix: "mem:1", Seed: 3, Now: now}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := generate(t, tt.w)
			perDevice := map[string]int{}
			var prevTS float64
			for i, b := range p.Bodies {
				ms, single, err := metric.Decode(b, metric.JSON, now, metric.Limits{Batch: 1000, Metrics: metric.DefaultMaxMetrics}, nil)
				if err != nil {
					t.Fatalf("body %d: %v\n%s", i, err, b[:min(len(b), 300)])
				}
				if len(ms) != tt.w.Batch || single != (tt.w.Batch == 1) {
					t.Fatalf("body %d: %d metrics single=%v, want %d", i, len(ms), single, tt.w.Batch)
				}
				for _, m := range ms {
					perDevice[m.DeviceID]++
					if m.Timestamp <= prevTS || m.Timestamp > float64(now.Unix())+1 {
						t.Fatalf("body %d: timestamp %v after %v, now %v", i, m.Timestamp, prevTS, now.Unix())
					}
					prevTS = m.Timestamp
				}
			}
			events := tt.w.Bodies * tt.w.Batch
			if len(perDevice) != min(tt.w.Devices, events) {
				t.Errorf("%d devices, want %d", len(perDevice), min(tt.w.Devices, events))
			}
			for id, n := range perDevice {
				if lo := events / tt.w.Devices; n < lo || n > lo+1 {
					t.Errorf("%s has %d events, want %d or %d", id, n, lo, lo+1)
				}
			}
			if _, ok := perDevice[DeviceID(tt.w.Prefix, 0)]; !ok {
				t.Errorf("DeviceID(%q, 0) = %q is not among the devices", tt.w.Prefix, DeviceID(tt.w.Prefix, 0))
			}
		})
	}
}

func TestGeneratedValuesLookLikeDevices(t *testing.T) {
	p := generate(t, Workload{Devices: 10, Batch: 1000, Bodies: 20, Prefix: "d", Seed: 9})
	var spikes, n int
	rps := map[string][]float64{}
	for _, b := range p.Bodies {
		ms, _, err := metric.Decode(b, metric.JSON, time.Now(), metric.Limits{Batch: 1000, Metrics: metric.DefaultMaxMetrics}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			rps[m.DeviceID] = append(rps[m.DeviceID], m.RPS)
		}
	}
	for id, vs := range rps {
		med := median(vs)
		for _, v := range vs {
			n++
			if v > 2.5*med {
				spikes++
			}
		}
		if med < 40 || med > 600 {
			t.Errorf("%s: median rps %v outside its 50-500 baseline", id, med)
		}
	}
	if rate := float64(spikes) / float64(n); rate < 0.005 || rate > 0.02 {
		t.Errorf("spike rate %.4f, want about %v", rate, spikeRate)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestWorkloadRejectsInvalidDeviceIDs(t *testing.T) {
	for _, w := range []Workload{
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: "has space"},
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: ""},
		{Devices: 1, Batch: 1, Bodies: 1, Prefix: strings.Repeat("x", 125)},
		{Devices: 0, Batch: 1, Bodies: 1, Prefix: "x"},
	} {
		if _, err := w.Generate(); err == nil {
			t.Errorf("Generate(%+v) succeeded", w)
		}
	}
}

// server answers 202 to every POST it can decode and 400 otherwise.
func server(t *testing.T, got *atomic.Int64) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ms, _, err := metric.Decode(b, metric.JSON, time.Now(), metric.Limits{Batch: 1000, Metrics: metric.DefaultMaxMetrics}, nil)
		if err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got.Add(int64(len(ms)))
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRunClosedStopsAtMaxRequests(t *testing.T) {
	var got atomic.Int64
	s := server(t, &got)
	p := generate(t, Workload{Devices: 7, Batch: 3, Bodies: 5, Prefix: "c", Seed: 1})
	res, err := RunClosed(context.Background(), Target{Client: NewClient(4, 10*time.Second), URL: s.URL, Pool: p},
		Closed{Concurrency: 4, Duration: time.Minute, MaxRequests: 101})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 101 || res.Accepted != 101 || res.Events != 303 || got.Load() != 303 || res.Failed() != 0 {
		t.Errorf("requests %d accepted %d events %d (server saw %d) failed %d, want 101 101 303 303 0",
			res.Requests, res.Accepted, res.Events, got.Load(), res.Failed())
	}
	if res.Latency.Count() != 101 || sum(res.PerSecond) != 303 {
		t.Errorf("latencies %d, per-second events %v, want 101 and a sum of 303", res.Latency.Count(), res.PerSecond)
	}
}

func TestRunOpenSendsEveryScheduledRequest(t *testing.T) {
	var got atomic.Int64
	s := server(t, &got)
	p := generate(t, Workload{Devices: 3, Batch: 1, Bodies: 4, Prefix: "o", Seed: 1})
	o := Open{Rate: 400, Duration: 250 * time.Millisecond, MaxInFlight: 8, Grace: 30 * time.Second}
	res, err := RunOpen(context.Background(), Target{Client: NewClient(8, 30*time.Second), URL: s.URL, Pool: p}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || res.Accepted != 100 || res.Missed != 0 || got.Load() != 100 {
		t.Errorf("requests %d accepted %d missed %d (server saw %d), want 100 100 0 100", res.Requests, res.Accepted, res.Missed, got.Load())
	}
	if res.SendDelay.Count() != 100 || res.Latency.Count() != 100 {
		t.Errorf("%d send delays and %d latencies, want 100 each", res.SendDelay.Count(), res.Latency.Count())
	}
}

func TestRunCountsRefusedRequests(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer s.Close()
	p := generate(t, Workload{Devices: 1, Batch: 1, Bodies: 1, Prefix: "x"})
	res, err := RunClosed(context.Background(), Target{Client: NewClient(2, 10*time.Second), URL: s.URL, Pool: p},
		Closed{Concurrency: 2, Duration: time.Minute, MaxRequests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["503"] != 10 || res.Accepted != 0 || res.Events != 0 {
		t.Errorf("errors %v accepted %d events %d, want 10 × 503", res.Errors, res.Accepted, res.Events)
	}
}

func sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}
