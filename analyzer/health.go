package main

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// shardHealth records which owned shards cannot be processed right now
// (their stream cannot be read, the consumer group cannot be created
// again, a batch cannot be written), for /ready and pulse_shard_healthy.
// Without it, an analyzer whose shards are stuck looks fine: Redis
// answers PING, and the lag of a stream without a group reads as nothing.
type shardHealth struct {
	gauge *prometheus.GaugeVec

	mu     sync.Mutex
	broken map[int]error
}

func newShardHealth(gauge *prometheus.GaugeVec) *shardHealth {
	return &shardHealth{gauge: gauge, broken: map[int]error{}}
}

// ok records that shard s made progress: a batch applied, or nothing left
// to read.
func (h *shardHealth) ok(s int) {
	h.mu.Lock()
	delete(h.broken, s)
	h.mu.Unlock()
	h.gauge.WithLabelValues(itoa(s)).Set(1)
}

// fail records why shard s cannot be processed, until the next ok.
func (h *shardHealth) fail(s int, err error) {
	h.mu.Lock()
	h.broken[s] = err
	h.mu.Unlock()
	h.gauge.WithLabelValues(itoa(s)).Set(0)
}

// forget drops shard s, no longer owned (its series goes with the other
// per-shard ones, in forgetShard).
func (h *shardHealth) forget(s int) {
	h.mu.Lock()
	delete(h.broken, s)
	h.mu.Unlock()
}

// Err names every owned shard that cannot be processed, with its last
// error; nil when there is none.
func (h *shardHealth) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.broken) == 0 {
		return nil
	}
	shards := make([]int, 0, len(h.broken))
	for s := range h.broken {
		shards = append(shards, s)
	}
	sort.Ints(shards)
	msgs := make([]string, len(shards))
	for i, s := range shards {
		msgs[i] = fmt.Sprintf("shard %d: %v", s, h.broken[s])
	}
	return fmt.Errorf("cannot process %s", strings.Join(msgs, "; "))
}
