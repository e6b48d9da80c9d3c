package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/shard"
)

// coordinator keeps this analyzer's share of the shards: it heartbeats
// into the member set, computes which shards it should own (rendezvous
// hashing over the live members), acquires and renews their leases,
// starts a worker per owned shard and stops the workers of shards that
// belong to someone else now.
type coordinator struct {
	name      string
	rdb       redis.UniversalClient
	keys      shard.Keys
	shards    int
	leaseTTL  time.Duration
	timeout   time.Duration
	newWorker func(shard int, lease string) *shardWorker
	m         *analyzerMetrics
	health    *shardHealth
	log       *zap.Logger

	owned map[int]*ownedShard
	wg    sync.WaitGroup
}

type ownedShard struct {
	lease string
	stop  context.CancelFunc
	done  chan struct{}
	err   error // set before done closes
	lost  bool  // the lease loss is counted
}

// tick is how often the coordinator heartbeats, rebalances and renews:
// a fifth of the lease, so that four renewals in a row may fail before a
// lease is lost.
func (c *coordinator) tick() time.Duration { return c.leaseTTL / 5 }

// Run coordinates until ctx ends, then stops every worker (each finishes
// its batch), releases the leases and leaves the member set, so that the
// other analyzers take the shards over at once.
func (c *coordinator) Run(ctx context.Context) error {
	c.owned = map[int]*ownedShard{}
	if err := c.createGroups(ctx); err != nil {
		return err
	}
	t := time.NewTicker(c.tick())
	defer t.Stop()
	lagEvery := 0
	for {
		c.rebalance(ctx)
		if lagEvery%5 == 0 {
			c.observeLag(ctx)
		}
		lagEvery++
		select {
		case <-ctx.Done():
			c.shutdown()
			return nil
		case <-t.C:
		}
	}
}

func (c *coordinator) createGroups(ctx context.Context) error {
	b := newBackoff()
	for s := 0; s < c.shards; {
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := createGroup(cctx, c.rdb, c.keys.Stream(s))
		cancel()
		if err == nil {
			s++
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("create consumer group; retrying", zap.Error(err))
		b.wait(ctx)
	}
	return nil
}

func (c *coordinator) rebalance(ctx context.Context) {
	c.reap()
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	members, err := heartbeatScript.Run(cctx, c.rdb, []string{c.keys.Members()}, c.name, c.leaseTTL.Milliseconds(), "").StringSlice()
	if err != nil {
		c.log.Warn("heartbeat", zap.Error(err))
	}
	c.renew(cctx)
	if err != nil {
		return // without the member list, keep what we hold
	}
	sort.Strings(members)
	for s := 0; s < c.shards; s++ {
		mine := shard.Owner(members, s) == c.name
		held, ok := c.owned[s]
		switch {
		case mine && !ok:
			c.acquire(cctx, s)
		case !mine && ok && held.stop != nil:
			c.log.Info("handing shard over", zap.Int("shard", s))
			held.stop()
			held.stop = nil // stopping; reap releases the lease when done
		}
	}
	c.m.shardsOwned.Set(float64(len(c.owned)))
}

func (c *coordinator) acquire(ctx context.Context, s int) {
	lease, err := acquireScript.Run(ctx, c.rdb, []string{c.keys.Lease(s), c.keys.Fence(s)}, c.name, c.leaseTTL.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return // still held by its previous owner; it hands it over or its lease expires
	}
	if err != nil {
		c.log.Warn("acquire shard", zap.Int("shard", s), zap.Error(err))
		return
	}
	c.log.Info("acquired shard", zap.Int("shard", s), zap.String("lease", lease))
	wctx, stop := context.WithCancel(context.Background())
	o := &ownedShard{lease: lease, stop: stop, done: make(chan struct{})}
	c.owned[s] = o
	w := c.newWorker(s, lease)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		o.err = w.run(wctx)
		close(o.done)
	}()
}

// renew extends every lease held; a lease found lost stops its worker.
func (c *coordinator) renew(ctx context.Context) {
	for s, o := range c.owned {
		ok, err := renewScript.Run(ctx, c.rdb, []string{c.keys.Lease(s)}, o.lease, c.leaseTTL.Milliseconds()).Int()
		if err != nil {
			c.log.Warn("renew lease", zap.Int("shard", s), zap.Error(err))
			continue
		}
		if ok == 0 && o.stop != nil {
			c.log.Warn("lease lost (taken by another analyzer, or Redis lost it)", zap.Int("shard", s))
			c.m.leaseLost.Inc()
			o.lost = true
			o.stop()
			o.stop = nil
		}
	}
}

// reap forgets finished workers and releases their leases.
func (c *coordinator) reap() {
	for s, o := range c.owned {
		select {
		case <-o.done:
		default:
			continue
		}
		if errors.Is(o.err, errLeaseLost) {
			if !o.lost {
				c.log.Warn("lease lost (taken by another analyzer, or Redis lost it)", zap.Int("shard", s))
				c.m.leaseLost.Inc()
			}
		} else {
			c.release(s, o.lease)
		}
		delete(c.owned, s)
		c.health.forget(s)
		c.m.forgetShard(s)
	}
}

func (c *coordinator) release(s int, lease string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, c.rdb, []string{c.keys.Lease(s)}, lease).Err(); err != nil {
		c.log.Warn("release lease", zap.Int("shard", s), zap.Error(err))
		return
	}
	c.log.Info("released shard", zap.Int("shard", s))
}

func (c *coordinator) shutdown() {
	for _, o := range c.owned {
		if o.stop != nil {
			o.stop()
		}
	}
	c.wg.Wait()
	c.reap()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := heartbeatScript.Run(ctx, c.rdb, []string{c.keys.Members()}, c.name, 0, "leave").Err(); err != nil {
		c.log.Warn("leave member set", zap.Error(err))
	}
	c.m.shardsOwned.Set(0)
}

// observeLag records the lag and pending count of every owned shard. A
// consumer group Redis lost is created again here too (at 0, as the
// workers would), so the figures are the truth about the recreated group,
// never a reassuring 0 for a stream nothing reads. What cannot be
// measured is recorded as NaN: the group is missing and cannot be
// created, Redis fails, or Redis cannot tell the lag (-1).
func (c *coordinator) observeLag(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for s := range c.owned {
		lag, pending := math.NaN(), math.NaN()
		g, err := c.groupInfo(ctx, s)
		if err != nil {
			c.log.Warn("measure shard lag", zap.Int("shard", s), zap.Error(err))
		} else {
			pending = float64(g.Pending)
			if g.Lag >= 0 {
				lag = float64(g.Lag)
			}
		}
		c.m.lag.WithLabelValues(itoa(s)).Set(lag)
		c.m.pending.WithLabelValues(itoa(s)).Set(pending)
	}
}

// groupInfo returns the analyzers' group of shard s, creating it (and the
// stream) when it is missing.
func (c *coordinator) groupInfo(ctx context.Context, s int) (redis.XInfoGroup, error) {
	key := c.keys.Stream(s)
	for try := 0; ; try++ {
		groups, err := c.rdb.XInfoGroups(ctx, key).Result()
		if err != nil && !isNoSuchKey(err) {
			return redis.XInfoGroup{}, fmt.Errorf("xinfo groups %s: %w", key, err)
		}
		for _, g := range groups {
			if g.Name == shard.Group {
				return g, nil
			}
		}
		if try > 0 {
			return redis.XInfoGroup{}, fmt.Errorf("xinfo groups %s: no group %s after creating it", key, shard.Group)
		}
		c.log.Warn("consumer group missing (Redis lost data?); creating it again", zap.Int("shard", s))
		if err := createGroup(ctx, c.rdb, key); err != nil {
			return redis.XInfoGroup{}, err
		}
	}
}

// isNoSuchKey reports the error of XINFO on a stream that does not exist.
func isNoSuchKey(err error) bool {
	return strings.Contains(err.Error(), "no such key")
}
