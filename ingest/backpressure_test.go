package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
)

// The backlog is what the analyzers have not yet applied: lag + pending of
// their group, or the whole stream when Redis cannot tell or no analyzer
// ever read it; summed over shards, other groups ignored.
func TestBacklogMeasure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redisSrv.Client()
	defer rdb.Close()
	type setup func(t *testing.T, keys shard.Keys)
	add := func(s, n int) setup {
		return func(t *testing.T, keys shard.Keys) {
			for i := 0; i < n; i++ {
				if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(s), Values: []string{"v", "1"}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	group := func(s int, name, start string) setup {
		return func(t *testing.T, keys shard.Keys) {
			if err := rdb.XGroupCreateMkStream(ctx, keys.Stream(s), name, start).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(s, n int, ack bool) setup {
		return func(t *testing.T, keys shard.Keys) {
			res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: shard.Group, Consumer: "c", Streams: []string{keys.Stream(s), ">"}, Count: int64(n)}).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ack {
				for _, m := range res[0].Messages {
					rdb.XAck(ctx, keys.Stream(s), shard.Group, m.ID)
				}
			}
		}
	}
	raw := func(args ...any) setup {
		return func(t *testing.T, keys shard.Keys) {
			for i, a := range args {
				if a == "STREAM" {
					args[i] = keys.Stream(0)
				}
			}
			if err := rdb.Do(ctx, args...).Err(); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
		}
	}
	tests := []struct {
		name  string
		steps []setup
		want  int64
	}{
		{"no stream", nil, 0},
		{"no group yet: the whole stream", []setup{add(0, 7)}, 7},
		{"group at 0, nothing read: lag", []setup{group(0, shard.Group, "0"), add(0, 5)}, 5},
		{"read, not acked: lag + pending", []setup{add(0, 5), group(0, shard.Group, "0"), read(0, 3, false)}, 5},
		{"read and acked: lag only", []setup{add(0, 5), group(0, shard.Group, "0"), read(0, 3, true)}, 2},
		{"group created at $: nothing", []setup{add(0, 4), group(0, shard.Group, "$")}, 0},
		// A group created (or set) at $ without ENTRIESREAD cannot tell its
		// lag once entries follow: the whole stream counts.
		{"group created at $, then more: lag unknown", []setup{add(0, 4), group(0, shard.Group, "$"), add(0, 2)}, 6},
		{"other groups ignored", []setup{add(0, 3), group(0, "dashboards", "$")}, 3},
		{"lag unknown after a deletion: the whole stream", []setup{
			raw("XADD", "STREAM", "1-0", "v", "1"), raw("XADD", "STREAM", "2-0", "v", "1"), raw("XADD", "STREAM", "3-0", "v", "1"),
			raw("XADD", "STREAM", "4-0", "v", "1"), raw("XADD", "STREAM", "5-0", "v", "1"), raw("XDEL", "STREAM", "3-0"),
			raw("XGROUP", "CREATE", "STREAM", shard.Group, "1-0"),
		}, 4},
		{"summed over shards", []setup{add(0, 3), group(2, shard.Group, "0"), add(2, 4), add(3, 1)}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := shard.Keys{Prefix: redisSrv.Prefix(t)}
			for _, s := range tt.steps {
				s(t, keys)
			}
			m := newIngestMetrics(prometheus.NewRegistry())
			g := newBacklogGate(rdb, keys, 4, 10, 2*time.Second, m, prometheus.NewRegistry(), zap.NewNop())
			got, err := g.measure(ctx)
			if err != nil || got != tt.want {
				t.Errorf("backlog = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// The gate closes when the backlog exceeds MAX_LAG and opens again when
// Redis cannot be asked: that outage is the publish path's to report.
func TestBacklogGateOpensWhenRedisIsAway(t *testing.T) {
	srv := redistest.StartTest(t)
	rdb := srv.Client()
	defer rdb.Close()
	keys := shard.Keys{Prefix: "gate"}
	for i := 0; i < 20; i++ {
		rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keys.Stream(i % 4), Values: []string{"v", "1"}})
	}
	reg := prometheus.NewRegistry()
	g := newBacklogGate(rdb, keys, 4, 10, 200*time.Millisecond, newIngestMetrics(reg), reg, zap.NewNop())
	stop := proctest.StartLoop(t, "Run", func(ctx context.Context) error { return g.Run(ctx, 20*time.Millisecond) })
	poll.Until(t, 5*time.Second, "gate closed at a backlog of 20 > 10", func() (bool, string) {
		return g.shedding.Load(), "open"
	})
	srv.Kill()
	poll.Until(t, 5*time.Second, "gate open with Redis away", func() (bool, string) {
		return !g.shedding.Load(), "closed"
	})
	stop()
}

// MAX_LAG=10 without a running analyzer: once 20 events wait, POSTs get
// 503 with Retry-After and the metrics say so; once the analyzers catch
// up, POSTs are accepted again.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "MAX_LAG=10", "MAX_BATCH=20")
	rdb := redisSrv.Client()
	defer rdb.Close()
	ctx := context.Background()
	keys := shard.Keys{Prefix: env["KEY_PREFIX"]}
	for s := 0; s < 4; s++ { // as the analyzers create it, so lag is measured
		if err := rdb.XGroupCreateMkStream(ctx, keys.Stream(s), shard.Group, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	in := startIngest(t, env)
	var batch []string
	for i := 0; i < 20; i++ {
		batch = append(batch, fmt.Sprintf(`{"device_id":"bp-%d","cpu":1,"rps":%d}`, i, i))
	}
	if r := do("POST", in.URL+"/metrics", "["+strings.Join(batch, ",")+"]"); r.status != 202 {
		t.Fatalf("POST of 20 events: %d %s %v", r.status, r.body, r.err)
	}
	var refused httpResult
	poll.Until(t, 5*time.Second, "POST refused for backpressure", func() (bool, string) {
		refused = do("POST", in.URL+"/metrics", metricBody("bp-late", 1))
		return refused.status == 503, fmt.Sprintf("%d %s", refused.status, refused.body)
	})
	if refused.header.Get("Retry-After") != "5" || refused.body != `{"error":"analyzers are behind, retry later"}` {
		t.Errorf("refused POST: Retry-After %q, body %s", refused.header.Get("Retry-After"), refused.body)
	}
	for _, p := range []string{"/health", "/ready"} {
		if r := do("GET", in.URL+p, ""); r.status != 200 {
			t.Errorf("GET %s while shedding: %d", p, r.status)
		}
	}
	expo := do("GET", in.URL+"/prometheus", "").body
	if v, _ := promtext.Value(t, expo, "pulse_ingest_backpressure", nil); v != 1 {
		t.Errorf("pulse_ingest_backpressure = %v, want 1", v)
	}
	if v, _ := promtext.Value(t, expo, "pulse_ingest_backlog", nil); v < 20 {
		t.Errorf("pulse_ingest_backlog = %v, want at least 20", v)
	}
	if v, _ := promtext.Value(t, expo, "pulse_events_rejected_total", map[string]string{"reason": "backpressure"}); v < 1 {
		t.Errorf(`pulse_events_rejected_total{reason="backpressure"} = %v, want at least 1`, v)
	}

	// The analyzers catch up: read and acknowledge everything.
	for s := 0; s < 4; s++ {
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: shard.Group, Consumer: "test", Streams: []string{keys.Stream(s), ">"}, Count: 1000, Block: -1}).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		for _, st := range res {
			for _, m := range st.Messages {
				if err := rdb.XAck(ctx, keys.Stream(s), shard.Group, m.ID).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	poll.Until(t, 5*time.Second, "POST accepted once the backlog is gone", func() (bool, string) {
		r := do("POST", in.URL+"/metrics", metricBody("bp-after", 1))
		return r.status == 202, fmt.Sprintf("%d %s", r.status, r.body)
	})
	expo = do("GET", in.URL+"/prometheus", "").body
	if v, ok := promtext.Value(t, expo, "pulse_ingest_backpressure", nil); !ok || v != 0 {
		t.Errorf("pulse_ingest_backpressure = %v (present %v), want 0", v, ok)
	}
}
