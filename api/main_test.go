package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/results"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

// redisSrv is the package's redis-server; tests share it through unique
// key prefixes. Tests that kill Redis start their own.
var redisSrv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisSrv)) }

// analysisConfig is what the seeding analysis and the api
// reading its results must agree on.
type analysisConfig struct {
	Shards     int
	Window     int
	MinSamples int
	Threshold  float64
}

var defaultAnalysis = analysisConfig{Shards: 4, Window: 50, MinSamples: 10, Threshold: 2}

// apiEnv is a valid api configuration on srv under prefix.
func apiEnv(srv *redistest.Server, prefix string, ac analysisConfig) map[string]string {
	return map[string]string{
		"REDIS_ADDR":    srv.Addr,
		"KEY_PREFIX":    prefix,
		"SHARDS":        strconv.Itoa(ac.Shards),
		"WINDOW_SIZE":   strconv.Itoa(ac.Window),
		"HTTP_ADDR":     "127.0.0.1:0",
		"REDIS_TIMEOUT": "2s",
	}
}

// newTestAPI returns the api router wired as run wires it.
func newTestAPI(t *testing.T, env map[string]string) http.Handler {
	t.Helper()
	cfg, err := config.Load(config.API, config.MapEnv(env))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	reg := prometheus.NewRegistry()
	rdb := redisx.New(redisx.Options{Addr: cfg.RedisAddr, Timeout: cfg.RedisTimeout}, reg)
	t.Cleanup(func() { rdb.Close() })
	svc, err := wire(cfg, log, reg, rdb)
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	return svc.router
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func get(h http.Handler, path string) response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// getJSON GETs path, which must answer 200, and decodes the body into v.
func getJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	r := get(h, path)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("GET %s: %s: %v", path, r.body, err)
	}
}

// normalize turns v into what decoding its JSON gives (float64 numbers,
// []any, map[string]any), so expectations compare with responses.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ---- seeding through the results contract ----
//
// The api's tests seed Redis as an analyzer would: events are XADDed to
// the shards' streams, read by a consumer of the analyzers' group,
// analyzed by internal/analysis and written by results.Writer — the very
// code the analyzer runs (write script, key layout, encodings) — so a
// change on either side of the contract that breaks the other fails here
// instead of passing against a hand-made copy of the analyzer's writes.
// The expected values come from internal/analysis run on the same events
// in the test (analyze), and from plain mean/standard-deviation arithmetic.

// seededEvent is an event as XADDed, with its stream id.
type seededEvent struct {
	ID string
	stream.Event
}

// seed writes events to the streams of prefix as ingest would (each in
// its device's shard), with stream ids that increase across all shards in
// slice order, so that "the fleet's newest" is well defined, then applies
// every shard's entries in batches of 100 through results.Writer.
// Timestamp and Receipt of the events are set here, consistent with the ids.
func seed(t *testing.T, prefix string, ac analysisConfig, events []stream.Event) []seededEvent {
	t.Helper()
	rdb := redisSrv.Client()
	defer rdb.Close()
	ctx := context.Background()
	keys := shard.Keys{Prefix: prefix}

	base := time.Now().UnixMilli() - int64(len(events)) - 60_000
	out := make([]seededEvent, len(events))
	pipe := rdb.Pipeline()
	for i, e := range events {
		ms := base + int64(i)
		e.Receipt = ms * 1_000_000
		e.Timestamp = float64(ms-250) / 1000
		out[i] = seededEvent{ID: strconv.FormatInt(ms, 10) + "-0", Event: e}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(shard.For(e.DeviceID, ac.Shards)), ID: out[i].ID, Values: e.Values()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("xadd: %v", err)
	}
	newDetector, err := detector.Factory("classic", detector.Params{WindowSize: ac.Window, MinSamples: ac.MinSamples, Threshold: ac.Threshold})
	if err != nil {
		t.Fatal(err)
	}
	const lease, consumer = "seeder:1", "seeder"
	for s := 0; s < ac.Shards; s++ {
		if err := rdb.Set(ctx, keys.Lease(s), lease, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.XGroupCreateMkStream(ctx, keys.Stream(s), shard.Group, "0").Err(); err != nil {
			t.Fatalf("xgroup create: %v", err)
		}
		w := results.NewWriter(rdb, keys, s)
		registry := results.NewRegistry(rdb, keys, 256)
		params := analysis.DefaultParams(ac.Window)
		params.Fleet = registry
		applier := analysis.NewApplier(newDetector(), params)
		recent := &state.Recent{Size: ac.Window}
		recents := map[string]*state.Recent{}
		for {
			res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: shard.Group, Consumer: consumer,
				Streams: []string{keys.Stream(s), ">"}, Count: 100, Block: -1}).Result()
			if errors.Is(err, redis.Nil) {
				break
			}
			if err != nil {
				t.Fatalf("xreadgroup: %v", err)
			}
			var entries []analysis.Entry
			for _, m := range res[0].Messages {
				entries = append(entries, analysis.Entry{ID: m.ID, Values: m.Values})
			}
			d := analysis.Decode(entries)
			states, corrupt, err := w.States(ctx, d.DeviceIDs, ac.Window)
			if err != nil || len(corrupt) > 0 {
				t.Fatalf("read states: %v (corrupt %v)", err, corrupt)
			}
			if err := registry.Prepare(ctx, d); err != nil {
				t.Fatal(err)
			}
			applied := applier.Apply(d, states, recent)
			for name, sb := range applied.Signals {
				if recents[name] == nil {
					recents[name] = &state.Recent{Size: ac.Window}
				}
				for i, id := range sb.IDs {
					recents[name].Add(id, sb.Values[i])
				}
			}
			err = w.Write(ctx, results.Batch{Lease: lease, Consumer: consumer, Detector: "classic", Window: ac.Window,
				LeaseTTL: time.Minute, Recent: recent, Recents: recents, Decoded: d, Result: applied})
			if err != nil {
				t.Fatalf("write results: %v", err)
			}
		}
	}
	return out
}

// reference is what internal/analysis computes for seeded events.
type reference struct {
	States    map[string]*state.Device
	Anomalies []state.Anomaly // in stream order
	// Alerts is every alert as it stands after the events, newest first
	// (by the stream id of its opening event, then number): an open one
	// as its device's state has it.
	Alerts []state.Alert
}

// analyze applies events in stream order with the pure analysis code the
// analyzer uses. Shards are independent and a device's results do not
// depend on batch boundaries, so one batch in global order is equivalent.
func analyze(t *testing.T, ac analysisConfig, events []seededEvent) reference {
	t.Helper()
	det, err := detector.New("classic", detector.Params{WindowSize: ac.Window, MinSamples: ac.MinSamples, Threshold: ac.Threshold})
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]analysis.Entry, len(events))
	for i, e := range events {
		vals := e.Values()
		m := map[string]any{}
		for j := 0; j+1 < len(vals); j += 2 {
			m[vals[j]] = vals[j+1]
		}
		entries[i] = analysis.Entry{ID: e.ID, Values: m}
	}
	d := analysis.Decode(entries)
	if len(d.Dead) > 0 {
		t.Fatalf("reference dead-lettered %d entries", len(d.Dead))
	}
	states := map[string]*state.Device{}
	res := analysis.NewApplier(det, analysis.DefaultParams(ac.Window)).Apply(d, states, nil)
	last := map[string]state.Alert{}
	for _, c := range res.Alerts {
		last[c.Alert.ID()] = c.Alert
	}
	for id, st := range states {
		for _, a := range st.OpenAlerts(id) {
			last[a.ID()] = a
		}
	}
	var alerts []state.Alert
	for _, a := range last {
		alerts = append(alerts, a)
	}
	slices.SortFunc(alerts, func(a, b state.Alert) int {
		if a.OpenedID != b.OpenedID {
			if b.OpenedID.Less(a.OpenedID) {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.Seq, a.Seq)
	})
	return reference{States: states, Anomalies: res.Anomalies, Alerts: alerts}
}

// alertJSON is one record of /alerts as the contract names it.
func alertJSON(a state.Alert) map[string]any {
	st, closedAt := "open", any(nil)
	if !a.Open {
		st, closedAt = "closed", a.ClosedAt
	}
	return map[string]any{
		"id": a.DeviceID + ":" + strconv.FormatUint(a.Seq, 10), "device_id": a.DeviceID, "signal": a.Signal, "state": st,
		"opened_at": a.OpenedAt, "closed_at": closedAt, "score": a.Score, "z_score": a.Z, "value": a.Value,
		"expected": map[string]any{"low": a.Low, "high": a.High}, "events": a.Events,
	}
}

// alertsJSON is the records of list in state which ("open", "closed",
// "all") of device (all devices: ""), at most limit, in list's order.
func alertsJSON(list []state.Alert, device, which string, limit int) []map[string]any {
	out := []map[string]any{}
	for _, a := range list {
		if (device == "" || a.DeviceID == device) && (which == "all" || (which == "open") == a.Open) && len(out) < limit {
			out = append(out, alertJSON(a))
		}
	}
	return out
}

// meanStdDev is the mean and population standard deviation of the last
// n values, computed naively in order.
func meanStdDev(vals []float64, n int) (mean, sd float64) {
	if len(vals) > n {
		vals = vals[len(vals)-n:]
	}
	if len(vals) == 0 {
		return 0, 0
	}
	var sum float64
	for _, v := range vals {
		sum += v
	}
	mean = sum / float64(len(vals))
	var sq float64
	for _, v := range vals {
		d := v - mean
		sq += d * d
	}
	return mean, math.Sqrt(sq / float64(len(vals)))
}

// anomalyJSON is one record of /anomalies as the contract names it.
func anomalyJSON(a state.Anomaly) map[string]any {
	return map[string]any{
		"device_id": a.DeviceID, "timestamp": a.Timestamp, "signal": a.Signal, "value": a.Value,
		"z_score": a.ZScore, "score": a.Score, "mean": a.Mean, "std_dev": a.StdDev, "stream_id": a.StreamID,
	}
}

// newestFirst returns the records of list, newest first, at most limit.
func newestFirst(list []state.Anomaly, limit int) []map[string]any {
	out := []map[string]any{}
	for i := len(list) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, anomalyJSON(list[i]))
	}
	return out
}

func filterDevice(list []state.Anomaly, id string) []state.Anomaly {
	var out []state.Anomaly
	for _, a := range list {
		if a.DeviceID == id {
			out = append(out, a)
		}
	}
	return out
}
