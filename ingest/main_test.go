package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

// redisSrv is the package's redis-server; tests share it through unique
// key prefixes. Tests that kill or pause Redis start their own.
var redisSrv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisSrv)) }

// baseEnv is a valid ingest configuration on srv under a new prefix,
// with settings ("NAME=value") added or replacing its own.
func baseEnv(t *testing.T, srv *redistest.Server, settings ...string) map[string]string {
	t.Helper()
	env := map[string]string{
		"REDIS_ADDR":     srv.Addr,
		"KEY_PREFIX":     srv.Prefix(t),
		"SHARDS":         "4",
		"HTTP_ADDR":      "127.0.0.1:0",
		"MAX_BATCH":      "5",
		"MAX_BODY_BYTES": "4096",
		"REDIS_TIMEOUT":  "2s",
	}
	for _, s := range settings {
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("setting %q: want NAME=value", s)
		}
		env[name] = value
	}
	return env
}

// testIngest is the ingest router wired as run wires it, on a real Redis.
type testIngest struct {
	handler http.Handler
	cfg     config.Config
	keys    shard.Keys
	rdb     *redis.Client // a plain client for assertions
	gate    *backlogGate
}

func newTestIngest(t *testing.T, env map[string]string) *testIngest {
	t.Helper()
	cfg, err := config.Load(config.Ingest, config.MapEnv(env))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	reg := prometheus.NewRegistry()
	rdb := redisx.New(redisx.Options{Addr: cfg.RedisAddr, Timeout: cfg.RedisTimeout, PoolSize: 4 * publishWriters}, reg)
	// The background loops are not started: tests of backpressure go
	// through run.
	svc, err := wire(cfg, log, reg, rdb)
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	t.Cleanup(func() {
		svc.pub.Close()
		rdb.Close()
	})
	keys, router, gate := shard.Keys{Prefix: cfg.KeyPrefix}, svc.router, svc.gate
	plain := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
	t.Cleanup(func() { plain.Close() })
	return &testIngest{handler: router, cfg: cfg, keys: keys, rdb: plain, gate: gate}
}

// storedEvents returns every event of every shard's stream, by shard, in
// stream order.
func storedEvents(t *testing.T, rdb *redis.Client, keys shard.Keys, shards int) map[int][]stream.Event {
	t.Helper()
	out := map[int][]stream.Event{}
	for s := 0; s < shards; s++ {
		msgs, err := rdb.XRange(context.Background(), keys.Stream(s), "-", "+").Result()
		if err != nil {
			t.Fatalf("xrange %s: %v", keys.Stream(s), err)
		}
		for _, msg := range msgs {
			ev, err := stream.Decode(msg.Values)
			if err != nil {
				t.Fatalf("entry %s of %s: %v", msg.ID, keys.Stream(s), err)
			}
			out[s] = append(out[s], ev)
		}
	}
	return out
}

// byShard groups events as ingest must store them: each in its device's
// shard, in request order.
func byShard(events []stream.Event, shards int) map[int][]stream.Event {
	out := map[int][]stream.Event{}
	for _, e := range events {
		s := shard.For(e.DeviceID, shards)
		out[s] = append(out[s], e)
	}
	return out
}

// withoutReceipt returns events with Receipt zeroed, for comparison with
// expectations that cannot know it.
func withoutReceipt(in map[int][]stream.Event) map[int][]stream.Event {
	out := map[int][]stream.Event{}
	for s, evs := range in {
		for _, e := range evs {
			e.Receipt = 0
			out[s] = append(out[s], e)
		}
	}
	return out
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// startIngest calls run with env and waits until it listens. The test's
// cleanup stops it if the test did not.
func startIngest(t *testing.T, env map[string]string) *proctest.InProcess {
	t.Helper()
	return proctest.StartInProcess(t, "ingest", "ingest", run, config.MapEnv(env))
}
