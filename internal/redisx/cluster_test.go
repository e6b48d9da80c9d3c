package redisx

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/redistest"
)

// While a killed master's replica takes over, commands on its slots fail
// fast (none waits out the timeout), and they succeed again as soon as
// the cluster is healthy: the client reloads its slot map on errors
// rather than every ClusterStateReloadInterval.
func TestClusterClientFailsFastAndFollowsAFailover(t *testing.T) {
	redistest.NeedCluster(t)
	c, err := redistest.StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	const timeout = 2 * time.Second
	rdb := New(Options{ClusterAddrs: c.Addrs(), Timeout: timeout}, prometheus.NewRegistry()).(*redis.ClusterClient)
	defer rdb.Close()
	ctx := context.Background()

	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	victim := ""
	for i := 0; victim == ""; i++ {
		k := "s:{" + string(rune('a'+i)) + "}"
		if m, err := rdb.MasterForKey(ctx, k); err == nil && m.Options().Addr == masters[1].Addr {
			victim = k
		}
	}
	pipeline := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		began := time.Now()
		pipe := rdb.Pipeline()
		for _, k := range []string{victim, "s:{other}"} {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []string{"v", "1"}})
		}
		_, err := pipe.Exec(ctx)
		return time.Since(began), err
	}
	if _, err := pipeline(); err != nil {
		t.Fatal(err)
	}
	// Transactions and scripts pass through noRetryHook unharmed.
	var incr *redis.IntCmd
	if _, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Incr(ctx, "n"+victim)
		incr = pipe.Incr(ctx, "n"+victim)
		return nil
	}); err != nil || incr.Val() != 2 {
		t.Fatalf("MULTI/EXEC: %v %v", incr.Val(), err)
	}
	script := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
	if n, err := script.Run(ctx, rdb, []string{"n" + victim}).Int(); err != nil || n != 3 {
		t.Fatalf("script: %v %v", n, err)
	}

	killedAt := time.Now()
	if _, err := c.KillMaster(1); err != nil {
		t.Fatal(err)
	}
	healthy := make(chan error, 1)
	go func() { healthy <- c.WaitHealthy(20 * time.Second) }()
	var failures int
	var healthyAt time.Time
	for {
		took, err := pipeline()
		if err == nil && !healthyAt.IsZero() {
			t.Logf("%d failed pipelines; healthy %v after the kill, pipelines succeed again %v after that",
				failures, healthyAt.Sub(killedAt).Round(time.Millisecond), time.Since(healthyAt).Round(time.Millisecond))
			if d := time.Since(healthyAt); d > time.Second {
				t.Errorf("first success %v after the cluster was healthy, want within 1s", d)
			}
			return
		}
		if err != nil {
			failures++
			if took > timeout/2 {
				t.Errorf("a pipeline failed after %v (%v), want fast failures", took, err)
			}
		}
		select {
		case err := <-healthy:
			if err != nil {
				t.Fatal(err)
			}
			healthyAt = time.Now()
		default:
		}
		if time.Since(killedAt) > 15*time.Second {
			t.Fatalf("pipelines still fail %v after the kill: %v", time.Since(killedAt), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
