package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
)

// clusterShards spreads the streams over every master of the cluster.
const clusterShards = 16

// startCluster starts a Redis Cluster of 3 masters, each with a replica,
// for one test. It skips the test where redis-server or redis-cli is
// missing, except in CI, which must run it.
func startCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	redistest.NeedCluster(t)
	began := time.Now()
	c, err := redistest.StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis cluster logs:\n%s", c.Logs())
		}
		c.Stop()
	})
	t.Logf("redis cluster of 3 masters and 3 replicas healthy in %v", time.Since(began).Round(time.Millisecond))
	return c
}

// startClusterPipeline runs ingest, analyzers and api on the cluster:
// REDIS_CLUSTER_ADDRS, set after the package's REDIS_ADDR, wins.
func startClusterPipeline(t *testing.T, c *redistest.Cluster, analyzers int, detectorName string) *pipeline {
	t.Helper()
	prefix := fmt.Sprintf("e2e%d", time.Now().UnixNano())
	env := []string{"REDIS_CLUSTER_ADDRS=" + strings.Join(c.Addrs(), ","), "KEY_PREFIX=" + prefix,
		"SHARDS=" + fmt.Sprint(clusterShards), "LEASE_TTL=1s", "READ_COUNT=40", "DETECTOR=" + detectorName}
	p := &pipeline{prefix: prefix, detector: detectorName}
	p.ingest = start(t, "ingest", env...)
	for i := 0; i < analyzers; i++ {
		p.analyzers = append(p.analyzers, start(t, "analyzer", append(env, fmt.Sprintf("CONSUMER_NAME=analyzer-%d", i))...))
	}
	p.api = start(t, "api", env...)
	return p
}

// checkClusterSettled is checkSettled on the cluster.
func checkClusterSettled(t *testing.T, c *redistest.Cluster, p *pipeline) {
	t.Helper()
	rdb := c.Client()
	defer rdb.Close()
	checkStreamsSettled(t, rdb, p.prefix, clusterShards)
}

// streamMasters returns, for each master address, the shards whose
// stream it holds, and checks that each shard's keys share one slot.
func streamMasters(t *testing.T, c *redistest.Cluster, p *pipeline) map[string][]int {
	t.Helper()
	rdb := c.Client()
	defer rdb.Close()
	ctx := context.Background()
	shards, err := rdb.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := func(slot int64) string {
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if slot >= r.Start && slot <= r.End {
					for _, n := range sh.Nodes {
						if n.Role == "master" && n.Health == "online" {
							return fmt.Sprintf("%s:%d", n.IP, n.Port)
						}
					}
				}
			}
		}
		return ""
	}
	keys := shard.Keys{Prefix: p.prefix}
	out := map[string][]int{}
	for s := 0; s < clusterShards; s++ {
		slot := rdb.ClusterKeySlot(ctx, keys.Stream(s)).Val()
		for _, k := range []string{keys.Lease(s), keys.Fence(s), keys.Stats(s), keys.Devices(s), keys.Anomalies(s),
			keys.DeadLetter(s), keys.DeviceStates(s), keys.DeviceAnomalies(s, "device-01"), keys.Alerts(s), keys.OpenAlerts(s),
			keys.DeviceAlerts(s, "device-01")} {
			if ks := rdb.ClusterKeySlot(ctx, k).Val(); ks != slot {
				t.Errorf("%s in slot %d, its stream %s in slot %d", k, ks, keys.Stream(s), slot)
			}
		}
		if rdb.Exists(ctx, keys.Stream(s)).Val() == 1 {
			m := owner(slot)
			out[m] = append(out[m], s)
		}
	}
	return out
}

func TestPipelineOnRedisClusterMatchesReference(t *testing.T) {
	c := startCluster(t)
	events := workload(20, 150, 42)
	p := startClusterPipeline(t, c, 2, "robust")
	began := time.Now()
	if err := p.post(t, events, 25, nil); err != nil {
		t.Fatal(err)
	}
	p.checkAgainstReference(t, events)
	checkClusterSettled(t, c, p)
	t.Logf("%d events posted and analyzed in %v", len(events), time.Since(began).Round(time.Millisecond))

	masters := streamMasters(t, c, p)
	if len(masters) < 2 {
		t.Errorf("the %d shards' streams are on %d master(s) %v, want them spread over at least 2", clusterShards, len(masters), masters)
	}
	t.Logf("streams by master: %v", masters)

	// The api's cross-shard reads: every device listed, with its total.
	var page struct {
		Devices []struct {
			DeviceID       string `json:"device_id"`
			TotalProcessed uint64 `json:"total_processed"`
		} `json:"devices"`
	}
	getJSON(t, p.api.URL("/devices?limit=100"), &page)
	want := reference(t, "robust", events).States
	if len(page.Devices) != len(want) {
		t.Errorf("/devices lists %d devices, want %d", len(page.Devices), len(want))
	}
	for _, d := range page.Devices {
		if w := want[d.DeviceID]; w == nil || w.Total != d.TotalProcessed {
			t.Errorf("/devices: %s total_processed=%d, want %v", d.DeviceID, d.TotalProcessed, w)
		}
	}
}

// TestClusterMasterFailoverUnderLoad kills a master with SIGKILL while one
// client posts without pause; its replica takes over after the node
// timeout (1 s), and later the old master rejoins as a replica. A post
// answered 503 is retried; its events are "uncertain": stored or not.
// Every event answered 202 must be analyzed, no device counts more than
// its accepted and uncertain events, nothing stays pending, and the
// services recover without a restart.
//
// One exception, measured and logged: replication is asynchronous, so a
// write the master acknowledged just before it died may not have reached
// the replica that replaces it, as a single Redis restarted with
// appendfsync everysec may lose its last second. Events lost that way are
// allowed only if they were accepted on the killed master's shards within
// a second before the kill (or while it was dying).
func TestClusterMasterFailoverUnderLoad(t *testing.T) {
	c := startCluster(t)
	p := startClusterPipeline(t, c, 2, "classic")
	events := workload(20, 10000, 11) // more than a run posts
	const batch = 10

	type post struct {
		at       time.Time // when the answer came
		accepted bool      // 202, else 503
		events   []event
	}
	// One client posts without pause, from its own goroutine, so the kill
	// lands while requests are in flight.
	var posts []post
	stop := make(chan struct{})
	posted := make(chan error, 1)
	go func() {
		for next := 0; next < len(events); {
			select {
			case <-stop:
				posted <- nil
				return
			default:
			}
			b := events[next:min(next+batch, len(events))]
			code, body, err := postJSON(p.ingest.URL("/metrics"), b)
			switch {
			case err != nil:
				posted <- fmt.Errorf("POST /metrics: %w", err)
				return
			case code == 202:
				posts = append(posts, post{time.Now(), true, b})
				next += len(b)
			case code == 503:
				posts = append(posts, post{time.Now(), false, b})
				time.Sleep(50 * time.Millisecond) // then the same batch again
			default:
				posted <- fmt.Errorf("POST /metrics = %d %s", code, body)
				return
			}
		}
		posted <- fmt.Errorf("workload of %d events exhausted before the end of the test", len(events))
	}()
	pause := func(d time.Duration) {
		select {
		case err := <-posted:
			t.Fatal(err)
		case <-time.After(d):
		}
	}

	pause(3 * time.Second)
	victim, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	victimShards := shardsOn(t, c, p, victim[1].Addr)
	killedAt := time.Now()
	killed, err := c.Failover(1, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	healthyAt := time.Now()
	pause(2 * time.Second)
	// The old master comes back as a replica of the one that replaced it,
	// under load.
	if err := c.Restart(killed); err != nil {
		t.Fatal(err)
	}
	pause(2 * time.Second)
	close(stop)
	if err := <-posted; err != nil {
		t.Fatal(err)
	}

	acked := map[string]int64{}     // device → events answered 202
	uncertain := map[string]int64{} // device → events of posts answered 503
	atRisk := map[string]int64{}    // device → events accepted on the victim just before it died
	var sent, failed int64
	var firstFailure, lastFailure, recovered time.Time
	for _, po := range posts {
		if !po.accepted {
			failed++
			if firstFailure.IsZero() {
				firstFailure = po.at
			}
			lastFailure, recovered = po.at, time.Time{}
		} else if !lastFailure.IsZero() && recovered.IsZero() {
			recovered = po.at
		}
		for _, e := range po.events {
			switch {
			case !po.accepted:
				uncertain[e.DeviceID]++
			default:
				acked[e.DeviceID]++
				sent++
				if po.at.After(killedAt.Add(-time.Second)) && po.at.Before(healthyAt) && victimShards[shard.For(e.DeviceID, clusterShards)] {
					atRisk[e.DeviceID]++
				}
			}
		}
	}
	if recovered.IsZero() {
		t.Fatalf("ingest still answered 503 %v after the kill", lastFailure.Sub(killedAt))
	}
	t.Logf("%d posts, %d events accepted, %d posts answered 503 (first %v, last %v after the kill); "+
		"cluster healthy again %v after the kill; ingest accepting again %v after the kill",
		len(posts), sent, failed, since(killedAt, firstFailure), since(killedAt, lastFailure),
		since(killedAt, healthyAt), since(killedAt, recovered))

	// Wait until the analyzers are done: nothing lagging or pending, and
	// the total steady.
	var f fleetView
	var steady int
	poll.True(t, 60*time.Second, "the analyzers to settle", func() bool {
		prev := f.TotalProcessed
		f = fleetView{}
		if getJSON(t, p.api.URL("/analyze"), &f) != 200 || f.Lag != 0 || f.Pending != 0 || f.TotalProcessed != prev {
			steady = 0
			return false
		}
		steady++
		time.Sleep(200 * time.Millisecond)
		return steady >= 3
	})

	var lost, risked, stored int64
	for id, n := range acked {
		var d deviceView
		getJSON(t, p.api.URL("/analyze?device_id="+id), &d)
		got := int64(d.TotalProcessed)
		risked += atRisk[id]
		if got < n {
			lost += n - got
			if n-got > atRisk[id] {
				t.Errorf("%s: %d events analyzed, %d answered 202: %d accepted events lost, more than the %d accepted on the dying master",
					id, got, n, n-got, atRisk[id])
			}
		}
		if got > n+uncertain[id] {
			t.Errorf("%s: %d events analyzed, more than %d accepted + %d uncertain: counted twice", id, got, n, uncertain[id])
		}
		stored += max(0, got-n)
	}
	t.Logf("fleet total_processed=%d; accepted events lost at the failover: %d (of %d accepted on the dying master in its last second); "+
		"events of 503 posts stored anyway (so stored twice after the retry): at least %d", f.TotalProcessed, lost, risked, stored)
	checkClusterSettled(t, c, p)
}

// shardsOn returns the shards whose keys the master at addr holds.
func shardsOn(t *testing.T, c *redistest.Cluster, p *pipeline, addr string) map[int]bool {
	t.Helper()
	rdb := c.Client()
	defer rdb.Close()
	keys := shard.Keys{Prefix: p.prefix}
	out := map[int]bool{}
	for s := 0; s < clusterShards; s++ {
		m, err := rdb.MasterForKey(context.Background(), keys.Stream(s))
		if err != nil {
			t.Fatal(err)
		}
		out[s] = m.Options().Addr == addr
	}
	return out
}

func since(t0, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(t0).Round(time.Millisecond).String()
}
