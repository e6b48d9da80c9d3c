package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/poll"
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
	// Named metrics and tags, in the order they are sent; NoCPU and NoRPS
	// leave cpu and rps out of an event that has named metrics.
	Metrics      []metric.Named `json:"-"`
	Tags         []metric.Tag   `json:"-"`
	NoCPU, NoRPS bool           `json:"-"`
}

// MarshalJSON writes the event as a device sends it, named metrics and
// tags in their order.
func (e event) MarshalJSON() ([]byte, error) {
	m := metric.Metric{DeviceID: e.DeviceID, CPU: e.CPU, RPS: e.RPS, NoCPU: e.NoCPU, NoRPS: e.NoRPS, Timestamp: e.Timestamp,
		Metrics: e.Metrics, Tags: e.Tags}
	return m.MarshalJSON()
}

// streamEvent is the stream entry ingest writes for e.
func (e event) streamEvent() stream.Event {
	return stream.Event{DeviceID: e.DeviceID, CPU: e.CPU, RPS: e.RPS, NoCPU: e.NoCPU, NoRPS: e.NoRPS, Timestamp: e.Timestamp,
		Metrics: e.Metrics, Tags: e.Tags}
}

// workload is the original's Locust mix: per device a base rps, Gaussian
// noise and one event in six a spike or a dip, in one global order; and
// from a device's 180th event on, level shifts of its rps (+800 for 12
// events in every 100, at a different phase per device), so that device
// alerts open and close once the anomaly scores are warm (150 values).
func workload(devices, perDevice int, seed uint64) []event {
	r := rand.New(rand.NewPCG(seed, 1))
	base := make([]float64, devices)
	for i := range base {
		base[i] = 80 + 40*r.Float64()
	}
	seen := make([]int, devices)
	t0 := float64(time.Now().Add(-time.Hour).Unix())
	var out []event
	for i := 0; i < devices*perDevice; i++ {
		d := r.IntN(devices)
		j := seen[d]
		seen[d]++
		rps := base[d] + 15*r.NormFloat64()
		if r.IntN(6) == 0 {
			if r.IntN(2) == 0 {
				rps += 150 + 150*r.Float64()
			} else {
				rps -= 100 + 100*r.Float64()
			}
		}
		if p := (j + 7*d) % 100; j >= 180 && p < 12 {
			rps += 800
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

// expected is what every device's results must be, whatever the
// analyzers did.
type expected struct {
	States    map[string]*state.Device
	Anomalies map[string][]state.Anomaly // per device, in stream order
	Anomalous int                        // anomalous events
	// Alerts per device, newest first, as they stand after the events
	// (an open one as its device's state has it).
	Alerts       map[string][]state.Alert
	AlertsOpened int
}

// applyInOrder applies the events in order in one process, with the
// services' default settings, and returns the result and the devices'
// states.
func applyInOrder(t *testing.T, detectorName string, events []event) (analysis.Result, map[string]*state.Device) {
	t.Helper()
	det, err := detector.New(detectorName, detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]analysis.Entry, len(events))
	for i, e := range events {
		vals := e.streamEvent().Values()
		m := map[string]any{}
		for j := 0; j < len(vals); j += 2 {
			m[vals[j]] = vals[j+1]
		}
		entries[i] = analysis.Entry{ID: strconv.Itoa(i+1) + "-0", Values: m}
	}
	states := map[string]*state.Device{}
	return analysis.NewApplier(det, analysis.DefaultParams(50)).Apply(analysis.Decode(entries), states, nil), states
}

// reference is what applying the events in order in one process leaves.
func reference(t *testing.T, detectorName string, events []event) expected {
	t.Helper()
	res, states := applyInOrder(t, detectorName, events)
	want := expected{States: states, Anomalies: map[string][]state.Anomaly{}, Anomalous: res.AnomalousEvents,
		Alerts: map[string][]state.Alert{}, AlertsOpened: res.AlertsOpened}
	for _, a := range res.Anomalies {
		want.Anomalies[a.DeviceID] = append(want.Anomalies[a.DeviceID], a)
	}
	want.Alerts = finalAlerts(res.Alerts, states)
	return want
}

// finalAlerts is every alert of changes as it stands at the end, per
// device, newest first: its last change, or an open one from its
// device's state.
func finalAlerts(changes []analysis.AlertChange, states map[string]*state.Device) map[string][]state.Alert {
	out := map[string][]state.Alert{}
	for _, c := range changes {
		list := out[c.Alert.DeviceID]
		if c.Change == alert.Opened {
			list = append(list, c.Alert)
		} else {
			list[slices.IndexFunc(list, func(a state.Alert) bool { return a.Seq == c.Alert.Seq })] = c.Alert
		}
		out[c.Alert.DeviceID] = list
	}
	for id, st := range states {
		for _, a := range st.OpenAlerts(id) {
			list := out[id]
			list[slices.IndexFunc(list, func(b state.Alert) bool { return b.Seq == a.Seq })] = a
		}
	}
	for _, list := range out {
		slices.Reverse(list)
	}
	return out
}

// alertView is one record of GET /alerts.
type alertView struct {
	ID       string   `json:"id"`
	DeviceID string   `json:"device_id"`
	Signal   string   `json:"signal"`
	State    string   `json:"state"`
	OpenedAt float64  `json:"opened_at"`
	ClosedAt *float64 `json:"closed_at"`
	Score    float64  `json:"score"`
	ZScore   float64  `json:"z_score"`
	Value    float64  `json:"value"`
	Expected struct {
		Low  float64 `json:"low"`
		High float64 `json:"high"`
	} `json:"expected"`
	Events uint32 `json:"events"`
}

// viewOf is how GET /alerts must show a.
func viewOf(a state.Alert) alertView {
	v := alertView{ID: a.ID(), DeviceID: a.DeviceID, Signal: a.Signal, State: "open", OpenedAt: a.OpenedAt,
		Score: a.Score, ZScore: a.Z, Value: a.Value, Events: a.Events}
	v.Expected.Low, v.Expected.High = a.Low, a.High
	if !a.Open {
		closed := a.ClosedAt
		v.State, v.ClosedAt = "closed", &closed
	}
	return v
}

// checkAlerts compares GET /alerts?device_id=id, every state, with want
// (newest first), exactly.
func (p *pipeline) checkAlerts(t *testing.T, id string, want []state.Alert) {
	t.Helper()
	var got struct {
		Alerts []alertView `json:"alerts"`
	}
	if code := getJSON(t, p.api.URL("/alerts?limit=1000&device_id="+id), &got); code != 200 {
		t.Fatalf("GET /alerts?device_id=%s = %d", id, code)
	}
	if len(got.Alerts) != len(want) {
		t.Errorf("%s: %d alerts listed, want %d:\n got %+v\nwant %+v", id, len(got.Alerts), len(want), got.Alerts, want)
		return
	}
	for i, a := range got.Alerts {
		if w := viewOf(want[i]); !reflect.DeepEqual(a, w) {
			t.Errorf("%s alert %d:\n got %+v (closed_at %v)\nwant %+v (closed_at %v)", id, i, a, deref(a.ClosedAt), w, deref(w.ClosedAt))
			return
		}
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
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

// startPipeline starts ingest, the analyzers and the api on the
// package's Redis; extra settings go to every service.
func startPipeline(t *testing.T, analyzers int, detectorName string, extra ...string) *pipeline {
	t.Helper()
	return startPipelineOn(t, redis, analyzers, detectorName, extra...)
}

// startPipelineOn starts the services against srv instead of the
// package's server, for tests that take it down.
func startPipelineOn(t *testing.T, srv *redistest.Server, analyzers int, detectorName string, extra ...string) *pipeline {
	t.Helper()
	prefix := fmt.Sprintf("e2e%d", time.Now().UnixNano())
	env := append([]string{"REDIS_ADDR=" + srv.Addr, "KEY_PREFIX=" + prefix, "SHARDS=4", "LEASE_TTL=1s", "READ_COUNT=40", "DETECTOR=" + detectorName}, extra...)
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
		code, body, err := postJSON(p.ingest.URL("/metrics"), events[i:min(i+batch, len(events))])
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
	OpenAlerts     int64   `json:"open_alerts"`
}

func (p *pipeline) waitProcessed(t *testing.T, n int64) fleetView {
	t.Helper()
	var f fleetView
	poll.True(t, 90*time.Second, fmt.Sprintf("%d events processed", n), func() bool {
		getJSON(t, p.api.URL("/analyze"), &f)
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
		Score     float64 `json:"score"`
		IsAnomaly bool    `json:"is_anomaly"`
	} `json:"last"`
	CPU struct {
		Mean   float64 `json:"mean"`
		StdDev float64 `json:"std_dev"`
		ZScore float64 `json:"z_score"`
		Score  float64 `json:"score"`
	} `json:"cpu"`
	Signals        map[string]signalView `json:"signals"`
	Tags           map[string]string     `json:"tags"`
	DroppedSignals uint64                `json:"dropped_signals"`
}

type signalView struct {
	RollingAverage float64 `json:"rolling_average"`
	Mean           float64 `json:"mean"`
	StdDev         float64 `json:"std_dev"`
	ZScore         float64 `json:"z_score"`
	Score          float64 `json:"score"`
	Value          float64 `json:"value"`
	Samples        int     `json:"samples"`
	AnomalyCount   uint64  `json:"anomaly_count"`
}

// namedView is how /analyze?device_id shows a device's named signal.
func namedView(n state.Named) signalView {
	mean, sd := n.Window.MeanStdDev()
	return signalView{RollingAverage: mean, Mean: mean, StdDev: sd, ZScore: n.LastZ, Score: n.LastScore, Value: n.LastValue,
		Samples: n.Window.Len(), AnomalyCount: n.Anomalies}
}

// checkAgainstReference compares every device's results, exactly, with
// the single-process reference.
func (p *pipeline) checkAgainstReference(t *testing.T, events []event) {
	t.Helper()
	ref := reference(t, p.detector, events)
	want, wantAnomalies := ref.States, ref.Anomalies
	f := p.waitProcessed(t, int64(len(events)))
	if f.TotalProcessed != int64(len(events)) || f.AnomalyCount != int64(ref.Anomalous) {
		t.Errorf("fleet: total_processed=%d anomaly_count=%d, want %d %d", f.TotalProcessed, f.AnomalyCount, len(events), ref.Anomalous)
	}
	open := 0
	for _, list := range ref.Alerts {
		for _, a := range list {
			if a.Open {
				open++
			}
		}
	}
	if f.OpenAlerts != int64(open) {
		t.Errorf("fleet: open_alerts=%d, want %d", f.OpenAlerts, open)
	}
	t.Logf("reference: %d anomalous events, %d alerts opened, %d open at the end", ref.Anomalous, ref.AlertsOpened, open)
	if f.WindowSize != 50 || f.Samples != 50 {
		t.Errorf("fleet window_size=%d samples=%d, want 50 50", f.WindowSize, f.Samples)
	}
	for id, w := range want {
		var got deviceView
		if code := getJSON(t, p.api.URL("/analyze?device_id="+id), &got); code != 200 {
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
		if got.Last.Score != w.Last.ScoreRPS || got.CPU.Score != w.Last.ScoreCPU {
			t.Errorf("%s: scores last %v cpu %v, want %v %v", id, got.Last.Score, got.CPU.Score, w.Last.ScoreRPS, w.Last.ScoreCPU)
		}
		for _, n := range w.Named {
			if g, want := got.Signals[n.Name], namedView(n); g != want {
				t.Errorf("%s %s: got %+v, want %+v", id, n.Name, g, want)
			}
		}
		wantTags := map[string]string{}
		for _, tag := range w.Tags {
			wantTags[tag.Key] = tag.Value
		}
		if !reflect.DeepEqual(got.Tags, wantTags) || got.DroppedSignals != w.DroppedSignals {
			t.Errorf("%s: tags %v dropped %d, want %v %d", id, got.Tags, got.DroppedSignals, wantTags, w.DroppedSignals)
		}
		p.checkAlerts(t, id, ref.Alerts[id])
		var list struct {
			Anomalies []state.Anomaly `json:"anomalies"`
		}
		getJSON(t, p.api.URL("/anomalies?limit=1000&device_id="+id), &list)
		wa := wantAnomalies[id]
		if len(list.Anomalies) != len(wa) {
			t.Errorf("%s: %d anomalies listed, want %d", id, len(list.Anomalies), len(wa))
			continue
		}
		for i, a := range list.Anomalies {
			r := wa[len(wa)-1-i] // newest first
			if a.Signal != r.Signal || a.Value != r.Value || a.ZScore != r.ZScore || a.Score != r.Score || a.Timestamp != r.Timestamp ||
				a.Mean != r.Mean || a.StdDev != r.StdDev {
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
	checkStreamsSettled(t, c, p.prefix, 4)
}

// checkStreamsSettled asserts that no entry of the streams of the first
// shards under prefix is pending and none of their dead-letter streams
// holds anything.
func checkStreamsSettled(t *testing.T, rdb goredis.Cmdable, prefix string, shards int) {
	t.Helper()
	ctx := context.Background()
	keys := shard.Keys{Prefix: prefix}
	for s := 0; s < shards; s++ {
		pend, err := rdb.XPending(ctx, keys.Stream(s), shard.Group).Result()
		if err != nil {
			t.Fatalf("xpending shard %d: %v", s, err)
		}
		if pend.Count != 0 {
			t.Errorf("shard %d: %d entries still pending", s, pend.Count)
		}
		if n := rdb.XLen(ctx, keys.DeadLetter(s)).Val(); n != 0 {
			t.Errorf("shard %d: %d valid entries dead-lettered", s, n)
		}
	}
}

// The same input gives the same results — states, anomalies and device
// alerts — with one analyzer or three sharing the shards.
func TestPipelineResultsMatchReferenceWhateverTheAnalyzerCount(t *testing.T) {
	events := workload(20, 300, 42)
	if ref := reference(t, "robust", events); ref.AlertsOpened < 10 {
		t.Fatalf("test data: %d alerts open; built for some on most devices", ref.AlertsOpened)
	}
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

// Three analyzers, SIGKILLed and replaced while events arrive: nothing is
// lost or applied twice, and every device alert opens exactly once per
// episode, as in one process.
func TestAnalyzerKilledMidStreamLosesAndRepeatsNothing(t *testing.T) {
	events := workload(20, 300, 7)
	if ref := reference(t, "classic", events); ref.AlertsOpened < 10 {
		t.Fatalf("test data: %d alerts open; built for some on most devices", ref.AlertsOpened)
	}
	p := startPipeline(t, 3, "classic")
	p.postWhileKilling(t, events)
	p.checkAgainstReference(t, events)
	p.checkSettled(t)
}

// postWhileKilling posts events in batches of 5 while SIGKILLing and
// replacing the pipeline's three analyzers, and returns once all are
// accepted.
func (p *pipeline) postWhileKilling(t *testing.T, events []event) {
	t.Helper()
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- p.post(t, events, 5, &sent) }()
	at := func(frac float64) {
		poll.True(t, 60*time.Second, fmt.Sprintf("%.0f%% of the events sent", 100*frac), func() bool {
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
	start(t, "analyzer", "KEY_PREFIX="+p.prefix, "SHARDS=4", "LEASE_TTL=1s", "READ_COUNT=40", "DETECTOR="+p.detector, "CONSUMER_NAME=analyzer-new")
	at(0.7)
	p.analyzers[2].signal(syscall.SIGKILL)
	at(0.8)
	p.analyzers[0].signal(syscall.SIGKILL)

	if err := <-errc; err != nil {
		t.Fatal(err)
	}
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

// sensorWorkload is workload's events with named metrics and tags: every
// device also reports temperature (with level shifts of its own, so that
// temperature alerts open and close) and humidity, one device in three is
// a sensor that reports those only (no cpu, no rps), devices carry a site
// tag from their first event and a third of them move site halfway.
func sensorWorkload(devices, perDevice int, seed uint64) []event {
	events := workload(devices, perDevice, seed)
	r := rand.New(rand.NewPCG(seed, 2))
	seen := make([]int, devices)
	for i := range events {
		e := &events[i]
		var d int
		fmt.Sscanf(e.DeviceID, "device-%d", &d)
		j := seen[d]
		seen[d]++
		temp := 20 + float64(d%5) + 0.3*r.NormFloat64()
		if p := (j + 11*d) % 90; j >= 170 && p < 10 {
			temp += 15
		}
		e.Metrics = []metric.Named{{Name: "temperature", Value: math.Round(temp*100) / 100}, {Name: "humidity", Value: float64(40 + r.IntN(5))}}
		if d%3 == 2 {
			e.NoCPU, e.NoRPS = true, true
		}
		site := []string{"berlin", "paris", "lima"}[d%3]
		switch {
		case j == 0:
			e.Tags = []metric.Tag{{Key: "site", Value: site}, {Key: "model", Value: "x" + strconv.Itoa(d%2)}}
		case j == perDevice/2 && d%3 == 1:
			e.Tags = []metric.Tag{{Key: "site", Value: "oslo"}}
		}
	}
	return events
}

// Named signals and tags are exact too: three analyzers SIGKILLed and
// replaced while events with named metrics arrive give, for every signal,
// what one process gives (DETECTOR=classic), alerts of named signals
// included.
func TestNamedSignalsExactUnderKills(t *testing.T) {
	events := sensorWorkload(12, 250, 11)
	ref := reference(t, "classic", events)
	named := 0
	for _, list := range ref.Alerts {
		for _, a := range list {
			if a.Signal == "temperature" {
				named++
			}
		}
	}
	if named < 5 {
		t.Fatalf("test data: %d temperature alerts; built for several", named)
	}
	p := startPipeline(t, 3, "classic")
	p.postWhileKilling(t, events)
	p.checkAgainstReference(t, events)
	p.checkSettled(t)

	// The tag groups follow the latest tags: device-01, -04, -07 and -10
	// moved from paris to oslo.
	var group struct {
		Devices int64 `json:"devices"`
	}
	for tag, want := range map[string]int64{"site:berlin": 4, "site:paris": 0, "site:oslo": 4, "site:lima": 4} {
		getJSON(t, p.api.URL("/analyze?tag="+tag), &group)
		if group.Devices != want {
			t.Errorf("/analyze?tag=%s: %d devices, want %d", tag, group.Devices, want)
		}
	}
	var temp struct {
		TotalProcessed int64  `json:"total_processed"`
		Devices        int64  `json:"devices"`
		Signal         string `json:"signal"`
	}
	getJSON(t, p.api.URL("/analyze?signal=temperature"), &temp)
	if temp.TotalProcessed != int64(len(events)) || temp.Devices != 12 || temp.Signal != "temperature" {
		t.Errorf("/analyze?signal=temperature = %+v, want %d values of 12 devices", temp, len(events))
	}
}
