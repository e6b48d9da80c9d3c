package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/instrument"
	"github.com/pulse-iot/pulse/internal/shard"
)

const (
	// backlogInterval is how often the backlog is measured: how late
	// ingest may notice that the analyzers fell behind, or caught up.
	backlogInterval = time.Second
	// backpressureRetryAfter is the Retry-After of a write refused for
	// backpressure: the analyzers need a while to catch up.
	backpressureRetryAfter = 5
)

var errBehind = errors.New("analyzers are behind, retry later")

// backlogGate refuses writes while the analyzers are more than maxLag
// events behind: events in the streams not yet analyzed, i.e. not yet
// delivered to the analyzers' group (lag) plus delivered but not yet
// acknowledged (pending). Data ingest cannot get analyzed is better kept
// by the devices than piled up in Redis until it runs out of memory.
type backlogGate struct {
	rdb     redis.Cmdable
	keys    shard.Keys
	shards  int
	maxLag  int64 // 0: off
	timeout time.Duration
	log     *zap.Logger

	shedding atomic.Bool
	backlog  prometheus.Gauge
	active   prometheus.Gauge
	rejected prometheus.Counter
}

func newBacklogGate(rdb redis.Cmdable, keys shard.Keys, shards int, maxLag int64, timeout time.Duration,
	m *ingestMetrics, reg prometheus.Registerer, log *zap.Logger) *backlogGate {
	g := &backlogGate{
		rdb: rdb, keys: keys, shards: shards, maxLag: maxLag, timeout: timeout, log: log,
		backlog: instrument.Gauge(reg, "pulse_ingest_backlog",
			"Events in the streams not yet analyzed (lag + pending of the analyzers' group, summed over shards), as last measured."),
		active: instrument.Gauge(reg, "pulse_ingest_backpressure",
			"1 while ingest refuses writes because the backlog exceeds MAX_LAG, else 0."),
		rejected: m.rejected.WithLabelValues(reasonBackpressure),
	}
	return g
}

// Middleware answers 503 {"error":"analyzers are behind, retry later"}
// with Retry-After while the gate is closed.
func (g *backlogGate) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if g.shedding.Load() {
			g.rejected.Inc()
			c.Header("Retry-After", strconv.Itoa(backpressureRetryAfter))
			httpserver.Error(c, http.StatusServiceUnavailable, errBehind.Error(), nil)
			return
		}
		c.Next()
	}
}

// Run measures the backlog every interval until ctx ends, and opens or
// closes the gate. A backlog that cannot be measured (Redis away) opens
// it: the writes then fail, or not, on their own.
func (g *backlogGate) Run(ctx context.Context, interval time.Duration) error {
	if g.maxLag <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	measuring := true
	for {
		mctx, cancel := context.WithTimeout(ctx, g.timeout)
		n, err := g.measure(mctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if measuring {
				g.log.Warn("cannot measure the analyzers' backlog; not refusing writes for it", zap.Error(err))
			}
			measuring = false
			g.set(false, n)
		default:
			if !measuring {
				g.log.Info("measuring the analyzers' backlog again", zap.Int64("backlog", n))
			}
			measuring = true
			g.backlog.Set(float64(n))
			g.set(n > g.maxLag, n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (g *backlogGate) set(shed bool, backlog int64) {
	if g.shedding.Swap(shed) == shed {
		return
	}
	if shed {
		g.active.Set(1)
		g.log.Warn("analyzers are behind: refusing writes", zap.Int64("backlog", backlog), zap.Int64("max_lag", g.maxLag))
		return
	}
	g.active.Set(0)
	g.log.Info("accepting writes again", zap.Int64("backlog", backlog), zap.Int64("max_lag", g.maxLag))
}

// measure returns the events of every shard's stream not yet analyzed,
// in one pipelined round trip: lag + pending of the analyzers' group; the
// whole stream when the group does not exist yet (the analyzers create it
// at 0, so they will read it all) or Redis cannot tell the lag (it
// answers nil after some deletions), an overestimate by the entries
// analyzed but not yet trimmed.
func (g *backlogGate) measure(ctx context.Context) (int64, error) {
	pipe := g.rdb.Pipeline()
	lens := make([]*redis.IntCmd, g.shards)
	groups := make([]*redis.XInfoGroupsCmd, g.shards)
	for s := 0; s < g.shards; s++ {
		lens[s] = pipe.XLen(ctx, g.keys.Stream(s))
		groups[s] = pipe.XInfoGroups(ctx, g.keys.Stream(s))
	}
	pipe.Exec(ctx) // errors are read per command: XINFO fails on a stream not yet created
	var total int64
	for s := 0; s < g.shards; s++ {
		n, err := lens[s].Result()
		if err != nil {
			return 0, fmt.Errorf("xlen %s: %w", g.keys.Stream(s), err)
		}
		if n == 0 {
			continue
		}
		infos, err := groups[s].Result()
		if err != nil {
			return 0, fmt.Errorf("xinfo groups %s: %w", g.keys.Stream(s), err)
		}
		total += shardBacklog(n, infos)
	}
	return total, nil
}

// shardBacklog is the events of a stream of length n not yet analyzed.
func shardBacklog(n int64, groups []redis.XInfoGroup) int64 {
	for _, gr := range groups {
		if gr.Name != shard.Group {
			continue
		}
		if gr.Lag < 0 { // unknown
			return n
		}
		return gr.Lag + gr.Pending
	}
	return n
}
