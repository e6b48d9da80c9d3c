package redistest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClusterFailsOverAndTheKilledMasterRejoinsAsReplica(t *testing.T) {
	NeedCluster(t)
	start := time.Now()
	c, err := StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("3 masters + 3 replicas healthy in %v", time.Since(start).Round(time.Millisecond))

	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	ctx := context.Background()
	rdb := c.Client()
	defer rdb.Close()
	for i := 0; i < 100; i++ {
		if err := rdb.Set(ctx, "k{"+strconv.Itoa(i)+"}", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Every write reached the replicas before the kill.
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.Do(ctx, "wait", 1, 1000).Err()
	})
	if err != nil {
		t.Fatal(err)
	}

	killedAt := time.Now()
	killed, err := c.Failover(1, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replica promoted %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	after, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if m == killed {
			t.Fatalf("killed node %s still serves slots", killed.Addr)
		}
	}
	if len(after) != 3 {
		t.Fatalf("%d masters after failover, want 3", len(after))
	}
	rdb.ReloadState(ctx)
	waitNoErr(t, func() error {
		for i := 0; i < 100; i++ {
			v, err := rdb.Get(ctx, "k{"+strconv.Itoa(i)+"}").Int()
			if err != nil {
				return err
			}
			if v != i {
				t.Fatalf("k{%d} = %d after failover", i, v)
			}
		}
		return nil
	})

	if err := c.Restart(killed); err != nil {
		t.Fatal(err)
	}
	nodes, err := clusterNodes(killed)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.myself && (n.master || len(n.slots) > 0) {
			t.Errorf("restarted %s is a master, want a replica", killed.Addr)
		}
	}
}

func waitNoErr(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
