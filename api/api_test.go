package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

// spikyFleet is 1000 events of four devices, interleaved, whose rps and cpu
// cycle within a narrow band, with five rps spikes to 1000: two of dev-a,
// one each of dev-b, dev-c and dev-d (whose very last event is one).
func spikyFleet() []stream.Event {
	devices := []string{"dev-a", "dev-b", "dev-c", "dev-d"}
	spikes := map[string][]int{"dev-a": {80, 180}, "dev-b": {120}, "dev-c": {150}, "dev-d": {249}}
	var events []stream.Event
	for i := 0; i < 250; i++ {
		for k, d := range devices {
			e := stream.Event{DeviceID: d, RPS: 100 + float64((i+k)%7), CPU: 40 + float64((i+2*k)%5) + 0.5}
			for _, s := range spikes[d] {
				if s == i {
					e.RPS = 1000
				}
			}
			events = append(events, e)
		}
	}
	return events
}

// The api's answers on a fleet the real analyzer analyzed, compared with
// what internal/analysis computes for the same events (exact floats: same
// code, same order) and with the contract's plain definitions (mean and
// population standard deviation of the newest WINDOW_SIZE values).
func TestQueriesOnAnalyzedFleet(t *testing.T) {
	t.Parallel()
	ac := defaultAnalysis
	prefix := redisSrv.Prefix(t)
	events := seed(t, prefix, ac, spikyFleet())
	ref := analyze(t, ac, events)
	if len(ref.Anomalies) != 5 {
		t.Fatalf("test data: the reference finds %d anomalies, the data is built for 5", len(ref.Anomalies))
	}
	openAlerts := alertsJSON(ref.Alerts, "", "open", 100)
	if len(ref.Alerts) < 2 || len(openAlerts) != 1 || openAlerts[0]["device_id"] != "dev-d" {
		t.Fatalf("test data: %d alerts, open %v; built for alerts after the scores' warm-up, dev-d's open at the end", len(ref.Alerts), openAlerts)
	}
	shards := map[int]bool{}
	for _, d := range []string{"dev-a", "dev-b", "dev-c", "dev-d"} {
		shards[shard.For(d, ac.Shards)] = true
	}
	if len(shards) < 2 {
		t.Fatal("test data: the devices must span shards to test merging")
	}
	h := newTestAPI(t, apiEnv(redisSrv, prefix, ac))

	var fleetRPS []float64
	byDevice := map[string][]seededEvent{}
	for _, e := range events {
		fleetRPS = append(fleetRPS, e.RPS)
		byDevice[e.DeviceID] = append(byDevice[e.DeviceID], e)
	}
	fleetMean, fleetSD := meanStdDev(fleetRPS, ac.Window)
	deviceView := func(id string, anomalies int, rate float64) map[string]any {
		evs := byDevice[id]
		var rps, cpu []float64
		for _, e := range evs {
			rps = append(rps, e.RPS)
			cpu = append(cpu, e.CPU)
		}
		mean, sd := meanStdDev(rps, ac.Window)
		cmean, csd := meanStdDev(cpu, ac.Window)
		last, st := evs[len(evs)-1], ref.States[id]
		open := []map[string]any{}
		for _, a := range alertsJSON(ref.Alerts, id, "open", 2) {
			open = append(open, map[string]any{"id": a["id"], "signal": a["signal"], "opened_at": a["opened_at"], "score": a["score"]})
		}
		return map[string]any{
			"device_id": id, "rolling_average": mean, "mean": mean, "std_dev": sd,
			"anomaly_count": anomalies, "total_processed": len(evs), "anomaly_rate": rate,
			"window_size": ac.Window, "samples": ac.Window, "last_seen": float64(last.Receipt) / 1e9,
			"last": map[string]any{"timestamp": last.Timestamp, "rps": last.RPS, "cpu": last.CPU,
				"z_score": st.Last.ZRPS, "score": st.Last.ScoreRPS, "is_anomaly": st.Last.Anomaly},
			"cpu":         map[string]any{"rolling_average": cmean, "mean": cmean, "std_dev": csd, "z_score": st.Last.ZCPU, "score": st.Last.ScoreCPU},
			"open_alerts": open,
		}
	}
	devA := filterDevice(ref.Anomalies, "dev-a")
	devices := []map[string]any{}
	for _, id := range []string{"dev-a", "dev-b", "dev-c", "dev-d"} {
		st := ref.States[id]
		devices = append(devices, map[string]any{"device_id": id, "last_seen": st.LastSeen, "total_processed": st.Total, "anomaly_count": st.Anomalies})
	}

	tests := []struct {
		name string
		path string
		want map[string]any // the response must hold these keys with these values
	}{
		{"fleet", "/analyze", map[string]any{
			"rolling_average": fleetMean, "mean": fleetMean, "std_dev": fleetSD,
			"anomaly_count": 5, "total_processed": 1000, "anomaly_rate": 0.5, "window_size": ac.Window,
			"samples": ac.Window, "devices": 4, "lag": 0, "pending": 0, "detectors": []string{"classic"}, "open_alerts": 1,
		}},
		{"device with two anomalies", "/analyze?device_id=dev-a", deviceView("dev-a", 2, 0.8)},
		{"device with one anomaly", "/analyze?device_id=dev-b", deviceView("dev-b", 1, 0.4)},
		{"device on another shard", "/analyze?device_id=dev-c", deviceView("dev-c", 1, 0.4)},
		{"device whose last event is an anomaly", "/analyze?device_id=dev-d", deviceView("dev-d", 1, 0.4)},
		{"fleet anomalies, newest first across shards", "/anomalies", map[string]any{"anomalies": newestFirst(ref.Anomalies, 100)}},
		{"fleet anomalies, limited", "/anomalies?limit=2", map[string]any{"anomalies": newestFirst(ref.Anomalies, 2)}},
		{"device anomalies", "/anomalies?device_id=dev-a", map[string]any{"anomalies": newestFirst(devA, 100)}},
		{"device anomalies, limited", "/anomalies?device_id=dev-a&limit=1", map[string]any{"anomalies": newestFirst(devA, 1)}},
		{"device anomalies, limit 1000", "/anomalies?device_id=dev-d&limit=1000",
			map[string]any{"anomalies": newestFirst(filterDevice(ref.Anomalies, "dev-d"), 1000)}},
		{"fleet alerts, newest first across shards", "/alerts", map[string]any{"alerts": alertsJSON(ref.Alerts, "", "all", 100)}},
		{"fleet alerts, limited", "/alerts?limit=1", map[string]any{"alerts": alertsJSON(ref.Alerts, "", "all", 1)}},
		{"fleet open alerts", "/alerts?state=open", map[string]any{"alerts": openAlerts}},
		{"fleet closed alerts", "/alerts?state=closed&limit=1000", map[string]any{"alerts": alertsJSON(ref.Alerts, "", "closed", 1000)}},
		{"device alerts", "/alerts?device_id=dev-a&state=all", map[string]any{"alerts": alertsJSON(ref.Alerts, "dev-a", "all", 100)}},
		{"device open alerts", "/alerts?device_id=dev-d&state=open", map[string]any{"alerts": alertsJSON(ref.Alerts, "dev-d", "open", 100)}},
		{"device closed alerts", "/alerts?device_id=dev-d&state=closed", map[string]any{"alerts": alertsJSON(ref.Alerts, "dev-d", "closed", 100)}},
		{"devices", "/devices", map[string]any{"devices": devices}},
		{"devices after a cursor", "/devices?cursor=dev-b&limit=1", map[string]any{"devices": devices[2:3], "next_cursor": "dev-c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]any
			getJSON(t, h, tc.path, &got)
			for k, want := range normalize(t, tc.want).(map[string]any) {
				if !reflect.DeepEqual(got[k], want) {
					t.Errorf("GET %s: %q = %v, want %v", tc.path, k, got[k], want)
				}
			}
		})
	}

	t.Run("prometheus", func(t *testing.T) {
		r := get(h, "/prometheus")
		for _, w := range []struct {
			name  string
			value float64
		}{{"rolling_average_rps", fleetMean}, {"pulse_fleet_events_processed", 1000}, {"pulse_fleet_anomalies", 5}, {"pulse_alerts_open", 1}} {
			if v, ok := promtext.Value(t, string(r.body), w.name, nil); !ok || v != w.value {
				t.Errorf("%s = %v (present %v), want %v", w.name, v, ok, w.value)
			}
		}
	})
}

// Walking /devices page by page yields every device exactly once, in id
// order, with its figures, whatever the page size.
func TestDevicesPagination(t *testing.T) {
	t.Parallel()
	ac := defaultAnalysis
	prefix := redisSrv.Prefix(t)
	var gen []stream.Event
	for round := 0; round < 3; round++ {
		for i := 0; i < 25; i++ {
			if round <= i%3 { // device i sends 1 + i%3 events
				gen = append(gen, stream.Event{DeviceID: fmt.Sprintf("dev-%02d", i), CPU: float64(i), RPS: float64(10*i + round)})
			}
		}
	}
	events := seed(t, prefix, ac, gen)
	ref := analyze(t, ac, events)
	var all []map[string]any
	for i := 0; i < 25; i++ {
		id := fmt.Sprintf("dev-%02d", i)
		st := ref.States[id]
		all = append(all, map[string]any{"device_id": id, "last_seen": st.LastSeen, "total_processed": 1 + i%3, "anomaly_count": 0})
	}
	wantAll := normalize(t, all)
	h := newTestAPI(t, apiEnv(redisSrv, prefix, ac))

	tests := []struct {
		query     string // before the cursor parameter
		wantSizes []int
	}{
		{"limit=1", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"limit=7", []int{7, 7, 7, 4}},
		{"limit=24", []int{24, 1}},
		{"limit=25", []int{25}},
		{"limit=1000", []int{25}},
		{"", []int{25}}, // the default limit, 100
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			var sizes []int
			var rows []any
			cursor := ""
			for page := 0; page < 100; page++ {
				path := "/devices?" + tc.query + "&cursor=" + url.QueryEscape(cursor)
				var body struct {
					Devices    []any   `json:"devices"`
					NextCursor *string `json:"next_cursor"`
				}
				getJSON(t, h, path, &body)
				sizes = append(sizes, len(body.Devices))
				rows = append(rows, body.Devices...)
				if body.NextCursor == nil {
					break
				}
				last, _ := body.Devices[len(body.Devices)-1].(map[string]any)
				if *body.NextCursor != last["device_id"] {
					t.Errorf("GET %s: next_cursor %q, want the page's last id %v", path, *body.NextCursor, last["device_id"])
				}
				cursor = *body.NextCursor
			}
			if !reflect.DeepEqual(sizes, tc.wantSizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.wantSizes)
			}
			if !reflect.DeepEqual(any(rows), wantAll) {
				t.Errorf("pages hold\n%v\nwant every device once, in id order:\n%v", rows, wantAll)
			}
		})
	}
}

// Lists longer than the limits: the default (100) and the maximum (1000)
// hold, and records stay newest first, per device and merged across shards.
func TestAnomalyListLimits(t *testing.T) {
	t.Parallel()
	// A low threshold makes about half of these uniform values anomalous;
	// cpu is constant, so each anomalous event has one record.
	ac := analysisConfig{Shards: 4, Window: 20, MinSamples: 2, Threshold: 0.5}
	prefix := redisSrv.Prefix(t)
	devices := []string{"noisy-1", "noisy-2"}
	if shard.For(devices[0], ac.Shards) == shard.For(devices[1], ac.Shards) {
		t.Fatal("test data: the devices must be on different shards")
	}
	var gen []stream.Event
	x := uint32(12345)
	for i := 0; i < 300; i++ {
		for _, d := range devices {
			x = x*1664525 + 1013904223
			gen = append(gen, stream.Event{DeviceID: d, CPU: 50, RPS: float64(x>>16) / 655.36})
		}
	}
	events := seed(t, prefix, ac, gen)
	ref := analyze(t, ac, events)
	one := filterDevice(ref.Anomalies, "noisy-1")
	if len(one) <= 100 || len(ref.Anomalies) > 1000 {
		t.Fatalf("test data: %d anomalies of noisy-1 (want over 100), %d in all (want at most 1000)", len(one), len(ref.Anomalies))
	}
	h := newTestAPI(t, apiEnv(redisSrv, prefix, ac))

	tests := []struct {
		path string
		want []map[string]any
	}{
		{"/anomalies?device_id=noisy-1", newestFirst(one, 100)},
		{"/anomalies?device_id=noisy-1&limit=1000", newestFirst(one, 1000)},
		{"/anomalies?device_id=noisy-1&limit=3", newestFirst(one, 3)},
		{"/anomalies", newestFirst(ref.Anomalies, 100)},
		{"/anomalies?limit=1000", newestFirst(ref.Anomalies, 1000)},
		{"/anomalies?limit=7", newestFirst(ref.Anomalies, 7)},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var got struct {
				Anomalies []any `json:"anomalies"`
			}
			getJSON(t, h, tc.path, &got)
			if want := normalize(t, tc.want).([]any); !reflect.DeepEqual(got.Anomalies, want) {
				t.Errorf("GET %s: %d records, want %d; first %v, want %v", tc.path, len(got.Anomalies), len(want), first(got.Anomalies), first(want))
			}
		})
	}
}

func first(l []any) any {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// Before any analysis every endpoint answers, with zeros and empty lists.
func TestQueriesOnEmptyFleet(t *testing.T) {
	t.Parallel()
	h := newTestAPI(t, apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis))
	tests := []struct {
		path string
		want map[string]any
	}{
		{"/analyze", map[string]any{"rolling_average": 0, "mean": 0, "std_dev": 0, "anomaly_count": 0, "total_processed": 0,
			"anomaly_rate": 0, "window_size": 50, "samples": 0, "devices": 0, "detectors": []string{}, "open_alerts": 0}},
		{"/anomalies", map[string]any{"anomalies": []any{}}},
		{"/alerts", map[string]any{"alerts": []any{}}},
		{"/alerts?state=open", map[string]any{"alerts": []any{}}},
		{"/alerts?state=closed", map[string]any{"alerts": []any{}}},
		{"/devices", map[string]any{"devices": []any{}}},
		{"/health", map[string]any{"status": "healthy"}},
		{"/ready", map[string]any{"status": "ready"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var got map[string]any
			getJSON(t, h, tc.path, &got)
			if want := normalize(t, tc.want).(map[string]any); !subset(got, want) {
				t.Errorf("GET %s: %v, want %v", tc.path, got, want)
			}
		})
	}
}

func subset(got, want map[string]any) bool {
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			return false
		}
	}
	return true
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	h := newTestAPI(t, apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis))
	long := strings.Repeat("x", 129)
	tests := []struct {
		path       string
		wantStatus int
	}{
		{"/analyze?device_id=ghost", 404},
		{"/analyze?device_id=" + url.QueryEscape("bad id"), 400},
		{"/analyze?device_id=", 400},
		{"/analyze?device_id=" + long, 400},
		{"/analyze?device_id=" + url.QueryEscape("dev/1"), 400},
		{"/anomalies?device_id=ghost", 404},
		{"/anomalies?device_id=" + url.QueryEscape("bad id"), 400},
		{"/anomalies?limit=0", 400},
		{"/anomalies?limit=1001", 400},
		{"/anomalies?limit=-1", 400},
		{"/anomalies?limit=abc", 400},
		{"/anomalies?limit=", 400},
		{"/anomalies?device_id=ghost&limit=5000", 400},
		{"/alerts?device_id=ghost", 404},
		{"/alerts?device_id=ghost&state=open", 404},
		{"/alerts?device_id=" + url.QueryEscape("bad id"), 400},
		{"/alerts?device_id=", 400},
		{"/alerts?limit=0", 400},
		{"/alerts?limit=1001", 400},
		{"/alerts?limit=x", 400},
		{"/alerts?state=pending", 400},
		{"/alerts?state=", 400},
		{"/alerts?state=OPEN", 400},
		{"/alerts?device_id=ghost&state=nope", 400},
		{"/devices?limit=0", 400},
		{"/devices?limit=1001", 400},
		{"/devices?limit=ten", 400},
		{"/devices?cursor=" + url.QueryEscape("bad cursor"), 400},
		{"/nowhere", 404},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := get(h, tc.path)
			if r.status != tc.wantStatus {
				t.Fatalf("GET %s: %d %s, want %d", tc.path, r.status, r.body, tc.wantStatus)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil || body.Error == "" {
				t.Errorf("GET %s: body %s, want a JSON error", tc.path, r.body)
			}
		})
	}
}

// With Redis down every query answers 503 with Retry-After within
// REDIS_TIMEOUT (never hangs), and answers again once Redis is back.
func TestQueriesWhileRedisIsDown(t *testing.T) {
	srv := redistest.StartTest(t)
	env := apiEnv(srv, srv.Prefix(t), defaultAnalysis)
	env["REDIS_TIMEOUT"] = "1s"
	const bound = 1*time.Second + 1*time.Second // REDIS_TIMEOUT + slack
	h := newTestAPI(t, env)
	paths := []string{"/analyze", "/analyze?device_id=dev-1", "/anomalies", "/anomalies?device_id=dev-1", "/alerts",
		"/alerts?device_id=dev-1", "/alerts?state=open", "/devices"}

	srv.Kill()
	for _, p := range paths {
		start := time.Now()
		r := get(h, p)
		elapsed := time.Since(start)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("GET %s with Redis down: %d (Retry-After %q) %s, want 503 with Retry-After", p, r.status, r.header.Get("Retry-After"), r.body)
		}
		if elapsed > bound {
			t.Errorf("GET %s with Redis down took %v, want at most %v", p, elapsed, bound)
		}
	}
	if r := get(h, "/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /ready with Redis down: %d, want 503", r.status)
	}
	if r := get(h, "/health"); r.status != http.StatusOK {
		t.Errorf("GET /health with Redis down: %d, want 200", r.status)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r := get(h, "/analyze"); r.status != http.StatusOK; r = get(h, "/analyze") {
		if time.Now().After(deadline) {
			t.Fatalf("GET /analyze 10s after Redis restarted: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := get(h, "/anomalies?device_id=dev-1"); r.status != http.StatusNotFound {
		t.Errorf("GET /anomalies?device_id=dev-1 after restart: %d, want 404", r.status)
	}
}

func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis))
	for _, p := range []string{"/health", "/analyze", "/devices"} {
		resp, err := http.Get(a.URL + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", p, resp.StatusCode)
		}
	}
	stopAPI(t, a)
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	proctest.RunRejects(t, run, func(t *testing.T) map[string]string { return apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis) },
		"SHARDS=0",
		"WINDOW_SIZE=1",
		"WINDOW_SIZE=fifty",
		"REDIS_TIMEOUT=abc",
		"KEY_PREFIX=a:b",
		"HTTP_ADDR=localhost",
	)
}

// The fleet's lag and pending are sums over the shards; a shard whose
// backlog cannot be told — its stream has no consumer group (Redis lost it
// and no analyzer created it again: nothing reads it), or the key is not a
// stream — makes them null and is listed, never counted as 0. A shard
// without a stream has nothing waiting: 0.
func TestFleetLagIsUnknownWithoutAConsumerGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := redisSrv.Client()
	t.Cleanup(func() { rc.Close() })
	// What each shard's stream holds: entries appended, how many the group
	// delivered (-1: no group), or a key of another type.
	type shardSetup struct {
		entries, delivered int
		notStream          bool
	}
	tests := []struct {
		name        string
		shards      []shardSetup
		lag         any // float64, or nil for null
		pending     any
		unknownLags []any
	}{
		{"every group there", []shardSetup{{5, 2, false}, {3, 3, false}, {0, -1, false}, {1, 0, false}}, 4.0, 5.0, []any{}},
		{"a group lost, its stream recreated by ingest", []shardSetup{{5, 2, false}, {3, -1, false}, {0, -1, false}, {1, 0, false}}, nil, nil, []any{1.0}},
		{"two groups lost", []shardSetup{{5, -1, false}, {3, 3, false}, {0, -1, false}, {2, -1, false}}, nil, nil, []any{0.0, 3.0}},
		{"a key that is not a stream", []shardSetup{{5, 2, false}, {0, 0, true}, {0, -1, false}, {0, -1, false}}, nil, nil, []any{1.0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := redisSrv.Prefix(t)
			keys := shard.Keys{Prefix: prefix}
			for s, sh := range tc.shards {
				key := keys.Stream(s)
				if sh.notStream {
					rc.Set(ctx, key, "x", 0)
					continue
				}
				for i := 0; i < sh.entries; i++ {
					rc.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: stream.Event{DeviceID: "d", RPS: 1, CPU: 1}.Values()})
				}
				if sh.delivered < 0 {
					continue
				}
				rc.XGroupCreateMkStream(ctx, key, shard.Group, "0")
				if sh.delivered > 0 {
					rc.XReadGroup(ctx, &redis.XReadGroupArgs{Group: shard.Group, Consumer: "c", Streams: []string{key, ">"}, Count: int64(sh.delivered)})
				}
			}
			h := newTestAPI(t, apiEnv(redisSrv, prefix, defaultAnalysis))
			var got map[string]any
			getJSON(t, h, "/analyze", &got)
			want := map[string]any{"lag": tc.lag, "pending": tc.pending, "lag_unknown_shards": tc.unknownLags}
			if !subset(got, want) {
				t.Errorf("GET /analyze: %v, want %v", got, want)
			}
		})
	}
}
