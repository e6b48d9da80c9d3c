package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

// redisSrv is the package's redis-server; tests share it through unique
// key prefixes.
var redisSrv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisSrv)) }

// Analysis settings of the tests' workers and reference.
const (
	testWindow     = 50
	testMinSamples = 10
	testThreshold  = 2.0
)

func testParams() detector.Params {
	return detector.Params{WindowSize: testWindow, MinSamples: testMinSamples, Threshold: testThreshold}
}

// fixture is one test's view of Redis: the instrumented client the
// analyzer uses, a plain one for assertions, and its keys and metrics.
type fixture struct {
	rdb  redis.UniversalClient
	rc   *redis.Client
	keys shard.Keys
	m    *analyzerMetrics
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rdb := redisx.New(redisx.Options{Addr: redisSrv.Addr, Timeout: 2 * time.Second}, prometheus.NewRegistry())
	rc := redisSrv.Client()
	t.Cleanup(func() {
		rdb.Close()
		rc.Close()
	})
	return &fixture{rdb: rdb, rc: rc, keys: shard.Keys{Prefix: redisSrv.Prefix(t)}, m: newAnalyzerMetrics(prometheus.NewRegistry())}
}

// worker returns a shard worker as run's newWorker builds it.
func (f *fixture) worker(t *testing.T, s int, lease, consumer string, count int) *shardWorker {
	t.Helper()
	newDetector, err := detector.Factory("classic", testParams())
	if err != nil {
		t.Fatal(err)
	}
	return newShardWorker(workerDeps{
		consumer: consumer, rdb: f.rdb, keys: f.keys, params: analysis.DefaultParams(testWindow), count: count,
		leaseTTL: 5 * time.Second, timeout: 2 * time.Second, newDetector: newDetector,
		m: f.m, health: newShardHealth(f.m.healthy), log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)),
	}, s, lease)
}

// firstBatch loads w, as its run starts, and reads its first batch, which
// must hold n entries.
func firstBatch(t *testing.T, w *shardWorker, n int) []analysis.Entry {
	t.Helper()
	ctx := context.Background()
	if err := w.load(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
	entries, err := w.read(ctx, false)
	if err != nil || len(entries) != n {
		t.Fatalf("read: %d entries, %v; want %d", len(entries), err, n)
	}
	return entries
}

// grant acquires shard s's lease for owner as the coordinator does.
func (f *fixture) grant(t *testing.T, s int, owner string) string {
	t.Helper()
	lease, err := acquireScript.Run(context.Background(), f.rdb, []string{f.keys.Lease(s), f.keys.Fence(s)}, owner, 60_000).Text()
	if err != nil {
		t.Fatalf("acquire lease of shard %d: %v", s, err)
	}
	return lease
}

func (f *fixture) createGroup(t *testing.T, s int) {
	t.Helper()
	if err := createGroup(context.Background(), f.rdb, f.keys.Stream(s)); err != nil {
		t.Fatal(err)
	}
}

// wipe deletes every key of the test's prefix in one command, as FLUSHALL
// (or Redis restarted without persistence) would for the whole server.
func (f *fixture) wipe(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := f.rc.Scan(ctx, 0, f.keys.Prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("wipe: no keys to delete")
	}
	if err := f.rc.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
}

// sent is an event as XADDed, with its stream id.
type sent struct {
	ID string
	stream.Event
}

// add appends events to shard s's stream as ingest does.
func (f *fixture) add(t *testing.T, s int, events []stream.Event) []sent {
	t.Helper()
	ctx := context.Background()
	pipe := f.rc.Pipeline()
	cmds := make([]*redis.StringCmd, len(events))
	for i, e := range events {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: f.keys.Stream(s), Values: e.Values()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("xadd: %v", err)
	}
	out := make([]sent, len(events))
	for i, c := range cmds {
		out[i] = sent{ID: c.Val(), Event: events[i]}
	}
	return out
}

// addRaw appends an entry with arbitrary fields, as a buggy or hostile
// producer might.
func (f *fixture) addRaw(t *testing.T, s int, values ...string) string {
	t.Helper()
	id, err := f.rc.XAdd(context.Background(), &redis.XAddArgs{Stream: f.keys.Stream(s), Values: values}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// genEvents returns n events of devices in turn, with values in a narrow
// band and an rps spike every 97th event, so that anomalies occur.
func genEvents(devices []string, n int) []stream.Event {
	now := time.Now()
	out := make([]stream.Event, n)
	for i := range out {
		rps := 100 + float64(i%7)
		if i%97 == 96 {
			rps = 900
		}
		out[i] = stream.Event{
			DeviceID: devices[i%len(devices)], CPU: 30 + float64(i%5), RPS: rps,
			Timestamp: float64(now.Unix()) + float64(i)/1000, Receipt: now.UnixNano() + int64(i),
		}
	}
	return out
}

// applyInOrder applies events with internal/analysis, in the order given
// (which must be each device's stream order), and returns the result and
// each device's state.
func applyInOrder(t *testing.T, events []sent) (analysis.Result, map[string]*state.Device) {
	t.Helper()
	det, err := detector.New("classic", testParams())
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]analysis.Entry, len(events))
	for i, e := range events {
		entries[i] = analysis.Entry{ID: e.ID, Values: valuesMap(e.Values())}
	}
	states := map[string]*state.Device{}
	return analysis.NewApplier(det, analysis.DefaultParams(testWindow)).Apply(analysis.Decode(entries), states, nil), states
}

// reference returns each device's state as the analyzer must have stored
// it after events (see applyInOrder).
func reference(t *testing.T, events []sent) map[string][]byte {
	t.Helper()
	_, states := applyInOrder(t, events)
	out := map[string][]byte{}
	for id, st := range states {
		out[id] = st.AppendBinary(nil)
	}
	return out
}

func valuesMap(kv []string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// storedStates returns the stored state of every device of want.
func (f *fixture) storedStates(t *testing.T, shards int, want map[string][]byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for id := range want {
		b, err := f.rc.HGet(context.Background(), f.keys.DeviceStates(shard.For(id, shards)), id).Bytes()
		if err == nil {
			out[id] = b
		}
	}
	return out
}

// totals returns each device's number of applied events, from its state.
func totals(t *testing.T, states map[string][]byte) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for id, b := range states {
		d, err := state.DecodeDevice(b, testWindow)
		if err != nil {
			t.Fatalf("state of %s: %v", id, err)
		}
		out[id] = d.Total
	}
	return out
}

func (f *fixture) processed(t *testing.T, s int) int64 {
	t.Helper()
	n, err := f.rc.HGet(context.Background(), f.keys.Stats(s), "processed").Int64()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) pending(t *testing.T, s int) int64 {
	t.Helper()
	p, err := f.rc.XPending(context.Background(), f.keys.Stream(s), shard.Group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// ---- the analyzer through run ----

// analyzerEnv is a valid analyzer configuration for prefix.
func analyzerEnv(prefix, name string, shards int) map[string]string {
	return map[string]string{
		"REDIS_ADDR":    redisSrv.Addr,
		"KEY_PREFIX":    prefix,
		"SHARDS":        strconv.Itoa(shards),
		"HTTP_ADDR":     "127.0.0.1:0",
		"CONSUMER_NAME": name,
		"LEASE_TTL":     "1s",
		"READ_COUNT":    "20",
		"DETECTOR":      "classic",
		"WINDOW_SIZE":   strconv.Itoa(testWindow),
		"MIN_SAMPLES":   strconv.Itoa(testMinSamples),
		"Z_THRESHOLD":   strconv.FormatFloat(testThreshold, 'g', -1, 64),
		"REDIS_TIMEOUT": "2s",
		"LOG_LEVEL":     "info",
	}
}

// runningAnalyzer is the analyzer started through run, in the test.
type runningAnalyzer struct{ *proctest.InProcess }

// startAnalyzer calls run with env and waits for its admin server. The
// test's cleanup stops it if the test did not.
func startAnalyzer(t *testing.T, env map[string]string) *runningAnalyzer {
	t.Helper()
	return &runningAnalyzer{proctest.StartInProcess(t, "analyzer "+env["CONSUMER_NAME"], "analyzer", run, config.MapEnv(env))}
}

// get GETs path of the analyzer and returns the status and body.
func (a *runningAnalyzer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(a.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns the analyzer's /prometheus exposition.
func (a *runningAnalyzer) scrape(t *testing.T) string {
	t.Helper()
	_, body := a.get(t, "/prometheus")
	return body
}

// leases returns the value of each shard's lease ("" when free).
func (f *fixture) leases(t *testing.T, shards int) []string {
	t.Helper()
	out := make([]string, shards)
	for s := range out {
		v, err := f.rc.Get(context.Background(), f.keys.Lease(s)).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		out[s] = v
	}
	return out
}

func owner(lease string) string {
	i := strings.LastIndexByte(lease, ':')
	if i < 0 {
		return ""
	}
	return lease[:i]
}
