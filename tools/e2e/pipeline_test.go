package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

type event struct {
	DeviceID  string  `json:"device_id"`
	CPU       float64 `json:"cpu"`
	RPS       float64 `json:"rps"`
	Timestamp float64 `json:"timestamp"`
}

// workload is the original's Locust mix: per device a base rps, Gaussian
// noise and one event in six a spike or a dip, in one global order.
func workload(devices, perDevice int, seed uint64) []event {
	r := rand.New(rand.NewPCG(seed, 1))
	base := make([]float64, devices)
	for i := range base {
		base[i] = 80 + 40*r.Float64()
	}
	t0 := float64(time.Now().Add(-time.Hour).Unix())
	var out []event
	for i := 0; i < devices*perDevice; i++ {
		d := r.IntN(devices)
		rps := base[d] + 15*r.NormFloat64()
		if r.IntN(6) == 0 {
			if r.IntN(2) == 0 {
				rps += 150 + 150*r.Float64()
			} else {
				rps -= 100 + 100*r.Float64()
			}
		}
		out = append(out, event{
			DeviceID:  fmt.Sprintf("device-%02d", d),
			CPU:       math.Round(100*math.Min(100, math.Max(0, 40+10*r.NormFloat64()))) / 100,
			RPS:       math.Max(0, rps),
			Timestamp: t0 + float64(i)/1000,
		})
	}
	return out
}

// reference applies the events in order in one process: what every
// device's results must be, whatever the analyzers did.
func reference(t *testing.T, detectorName string, events []event) (map[string]*state.Device, map[string][]state.Anomaly, int) {
	t.Helper()
	det, err := detector.New(detectorName, detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]analysis.Entry, len(events))
	for i, e := range events {
		vals := stream.Event{DeviceID: e.DeviceID, CPU: e.CPU, RPS: e.RPS, Timestamp: e.Timestamp}.Values()
		m := map[string]any{}
		for j := 0; j < len(vals); j += 2 {
			m[vals[j]] = vals[j+1]
		}
		entries[i] = analysis.Entry{ID: strconv.Itoa(i+1) + "-0", Values: m}
	}
	states := map[string]*state.Device{}
	res := analysis.NewApplier(det, 50).Apply(analysis.Decode(entries), states, nil)
	anomalies := map[string][]state.Anomaly{}
	for _, a := range res.Anomalies {
		anomalies[a.DeviceID] = append(anomalies[a.DeviceID], a)
	}
	return states, anomalies, res.AnomalousEvents
}

type pipeline struct {
	prefix    string
	detector  string
	redis     *redistest.Server
	env       []string // every service's
	ingest    *service
	api       *service
	analyzers []*service
}

func startPipeline(t *testing.T, analyzers int, detectorName string) *pipeline {
	t.Helper()
	return startPipelineOn(t, redis, analyzers, detectorName)
}

// startPipelineOn starts the services against srv instead of the
// package's server, for tests that take it down.
func startPipelineOn(t *testing.T, srv *redistest.Server, analyzers int, detectorName string) *pipeline {
	t.Helper()
	prefix := fmt.Sprintf("e2e%d", time.Now().UnixNano())
	env := []string{"REDIS_ADDR=" + srv.Addr, "KEY_PREFIX=" + prefix, "SHARDS=4", "LEASE_TTL=1s", "READ_COUNT=40", "DETECTOR=" + detectorName}
	p := &pipeline{prefix: prefix, detector: detectorName, redis: srv, env: env}
	p.ingest = start(t, "ingest", env...)
	for i := 0; i < analyzers; i++ {
		p.analyzers = append(p.analyzers, start(t, "analyzer", append(env, fmt.Sprintf("CONSUMER_NAME=analyzer-%d", i))...))
	}
	p.api = start(t, "api", env...)
	return p
}

// post sends the events in order, in batches, from one client, so the
// order of each device's events in its stream is the order of events.
func (p *pipeline) post(t *testing.T, events []event, batch int, sent *atomic.Int64) error {
	for i := 0; i < len(events); i += batch {
		code, body, err := postJSON(p.ingest.url("/metrics"), events[i:min(i+batch, len(events))])
		if err != nil {
			return err
		}
		if code != 202 {
			return fmt.Errorf("POST /metrics = %d %s", code, body)
		}
		if sent != nil {
			sent.Add(int64(min(batch, len(events)-i)))
		}
	}
	return nil
}

type fleetView struct {
	TotalProcessed int64   `json:"total_processed"`
	AnomalyCount   int64   `json:"anomaly_count"`
	AnomalyRate    float64 `json:"anomaly_rate"`
	WindowSize     int     `json:"window_size"`
	Samples        int     `json:"samples"`
	Lag            int64   `json:"lag"`
	Pending        int64   `json:"pending"`
}

func (p *pipeline) waitProcessed(t *testing.T, n int64) fleetView {
	t.Helper()
	var f fleetView
	waitFor(t, 90*time.Second, fmt.Sprintf("%d events processed", n), func() bool {
		getJSON(t, p.api.url("/analyze"), &f)
		return f.TotalProcessed >= n
	})
	return f
}

type deviceView struct {
	DeviceID       string  `json:"device_id"`
	RollingAverage float64 `json:"rolling_average"`
	Mean           float64 `json:"mean"`
	StdDev         float64 `json:"std_dev"`
	AnomalyCount   uint64  `json:"anomaly_count"`
	TotalProcessed uint64  `json:"total_processed"`
	WindowSize     int     `json:"window_size"`
	Last           struct {
		Timestamp float64 `json:"timestamp"`
		RPS       float64 `json:"rps"`
		CPU       float64 `json:"cpu"`
		ZScore    float64 `json:"z_score"`
		IsAnomaly bool    `json:"is_anomaly"`
	} `json:"last"`
	CPU struct {
		Mean   float64 `json:"mean"`
		StdDev float64 `json:"std_dev"`
		ZScore float64 `json:"z_score"`
	} `json:"cpu"`
}

// checkAgainstReference compares every device's results, exactly, with
// the single-process reference.
func (p *pipeline) checkAgainstReference(t *testing.T, events []event) {
	t.Helper()
	want, wantAnomalies, anomalous := reference(t, p.detector, events)
	f := p.waitProcessed(t, int64(len(events)))
	if f.TotalProcessed != int64(len(events)) || f.AnomalyCount != int64(anomalous) {
		t.Errorf("fleet: total_processed=%d anomaly_count=%d, want %d %d", f.TotalProcessed, f.AnomalyCount, len(events), anomalous)
	}
	if f.WindowSize != 50 || f.Samples != 50 {
		t.Errorf("fleet window_size=%d samples=%d, want 50 50", f.WindowSize, f.Samples)
	}
	for id, w := range want {
		var got deviceView
		if code := getJSON(t, p.api.url("/analyze?device_id="+id), &got); code != 200 {
			t.Fatalf("GET /analyze?device_id=%s = %d", id, code)
		}
		mean, sd := w.RPS.MeanStdDev()
		cpuMean, cpuSD := w.CPU.MeanStdDev()
		if got.TotalProcessed != w.Total || got.AnomalyCount != w.Anomalies ||
			got.Mean != mean || got.RollingAverage != mean || got.StdDev != sd ||
			got.Last.ZScore != w.Last.ZRPS || got.Last.IsAnomaly != w.Last.Anomaly || got.Last.RPS != w.Last.RPS ||
			got.Last.Timestamp != w.Last.Timestamp || got.CPU.Mean != cpuMean || got.CPU.StdDev != cpuSD || got.CPU.ZScore != w.Last.ZCPU {
			t.Errorf("%s: got %+v\nwant total=%d anomalies=%d mean=%v sd=%v last=%+v cpu mean=%v sd=%v",
				id, got, w.Total, w.Anomalies, mean, sd, w.Last, cpuMean, cpuSD)
		}
		var list struct {
			Anomalies []state.Anomaly `json:"anomalies"`
		}
		getJSON(t, p.api.url("/anomalies?limit=1000&device_id="+id), &list)
		wa := wantAnomalies[id]
		if len(list.Anomalies) != len(wa) {
			t.Errorf("%s: %d anomalies listed, want %d", id, len(list.Anomalies), len(wa))
			continue
		}
		for i, a := range list.Anomalies {
			r := wa[len(wa)-1-i] // newest first
			if a.Signal != r.Signal || a.Value != r.Value || a.ZScore != r.ZScore || a.Timestamp != r.Timestamp || a.Mean != r.Mean || a.StdDev != r.StdDev {
				t.Errorf("%s anomaly %d: got %+v, want %+v", id, i, a, r)
				break
			}
		}
	}
}

// checkSettled asserts that nothing is left pending and nothing valid was
// dead-lettered.
func (p *pipeline) checkSettled(t *testing.T) {
	t.Helper()
	c := p.redis.Client()
	defer c.Close()
	ctx := context.Background()
	keys := shard.Keys{Prefix: p.prefix}
	for s := 0; s < 4; s++ {
		pend, err := c.XPending(ctx, keys.Stream(s), shard.Group).Result()
		if err != nil {
			t.Fatalf("xpending shard %d: %v", s, err)
		}
		if pend.Count != 0 {
			t.Errorf("shard %d: %d entries still pending", s, pend.Count)
		}
		if n := c.XLen(ctx, keys.DeadLetter(s)).Val(); n != 0 {
			t.Errorf("shard %d: %d valid entries dead-lettered", s, n)
		}
	}
}

func TestPipelineResultsMatchReferenceWhateverTheAnalyzerCount(t *testing.T) {
	events := workload(20, 150, 42)
	for _, tt := range []struct {
		detector  string
		analyzers int
	}{{"classic", 1}, {"classic", 3}, {"robust", 1}, {"robust", 3}} {
		t.Run(fmt.Sprintf("%s with %d analyzers", tt.detector, tt.analyzers), func(t *testing.T) {
			p := startPipeline(t, tt.analyzers, tt.detector)
			if err := p.post(t, events, 25, nil); err != nil {
				t.Fatal(err)
			}
			p.checkAgainstReference(t, events)
			p.checkSettled(t)
		})
	}
}

func TestAnalyzerKilledMidStreamLosesAndRepeatsNothing(t *testing.T) {
	events := workload(20, 250, 7)
	p := startPipeline(t, 2, "classic")
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- p.post(t, events, 5, &sent) }()
	at := func(frac float64) {
		waitFor(t, 60*time.Second, fmt.Sprintf("%.0f%% of the events sent", 100*frac), func() bool {
			return sent.Load() >= int64(frac*float64(len(events)))
		})
	}

	// Kill and restart under the same name, as a StatefulSet pod restarts:
	// it finds its own pending entries.
	at(0.2)
	p.analyzers[0].signal(syscall.SIGKILL)
	at(0.35)
	p.analyzers[0].launch()
	// Kill for good and start a new one under a new name, as a Deployment
	// replaces a pod: the dead consumer's pending entries must be claimed.
	at(0.5)
	p.analyzers[1].signal(syscall.SIGKILL)
	at(0.6)
	start(t, "analyzer", "KEY_PREFIX="+p.prefix, "SHARDS=4", "LEASE_TTL=1s", "READ_COUNT=40", "DETECTOR=classic", "CONSUMER_NAME=analyzer-new")
	at(0.8)
	p.analyzers[0].signal(syscall.SIGKILL)

	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	p.checkAgainstReference(t, events)
	p.checkSettled(t)
}

func TestAnalyzerSIGTERMHandsShardsOver(t *testing.T) {
	events := workload(10, 60, 3)
	p := startPipeline(t, 2, "robust")
	half := len(events) / 2
	if err := p.post(t, events[:half], 20, nil); err != nil {
		t.Fatal(err)
	}
	p.waitProcessed(t, int64(half))
	p.analyzers[0].signal(syscall.SIGTERM)
	// The survivor owns every shard at once: the leaving analyzer released
	// its leases, so nothing waits for them to expire.
	if err := p.post(t, events[half:], 20, nil); err != nil {
		t.Fatal(err)
	}
	p.checkAgainstReference(t, events)
	p.checkSettled(t)
	c := redis.Client()
	defer c.Close()
	if members := c.ZRange(context.Background(), p.prefix+":analyzers", 0, -1).Val(); len(members) != 1 || members[0] != "analyzer-1" {
		t.Errorf("live analyzers = %v, want [analyzer-1]", members)
	}
}
