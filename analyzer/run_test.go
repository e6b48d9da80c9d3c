package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

// producer appends events to their devices' shards as ingest does and
// remembers them, in order, for the reference.
type producer struct {
	f      *fixture
	shards int
	mu     sync.Mutex
	sent   []sent
}

func (p *producer) send(t *testing.T, events []stream.Event) {
	t.Helper()
	ctx := context.Background()
	pipe := p.f.rc.Pipeline()
	cmds := make([]*redis.StringCmd, len(events))
	for i, e := range events {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: p.f.keys.Stream(shard.For(e.DeviceID, p.shards)), Values: e.Values()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Errorf("xadd: %v", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range cmds {
		p.sent = append(p.sent, sent{ID: c.Val(), Event: events[i]})
	}
}

func (p *producer) all() []sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sent(nil), p.sent...)
}

// Two analyzers split the shards, each shard owned by exactly one; when
// one stops, the other takes every shard over within a few seconds, and
// every event sent before and during the handover is applied exactly once.
func TestAnalyzersRebalanceAndHandOver(t *testing.T) {
	t.Parallel()
	const shards = 8
	nameA, nameB := "analyzer-a", "analyzer-b"
	var split []string
	for s := 0; s < shards; s++ {
		split = append(split, shard.Owner([]string{nameA, nameB}, s))
	}
	if !strings.Contains(strings.Join(split, ","), nameA) || !strings.Contains(strings.Join(split, ","), nameB) {
		t.Fatalf("test data: rendezvous gives %v; pick names that split the shards", split)
	}
	f := newFixture(t)
	p := &producer{f: f, shards: shards}
	devices := make([]string, 24)
	for i := range devices {
		devices[i] = fmt.Sprintf("reb-%02d", i)
	}
	owners := func() []string {
		out := make([]string, shards)
		for s, l := range f.leases(t, shards) {
			out[s] = owner(l)
		}
		return out
	}

	p.send(t, genEvents(devices, 200))
	a := startAnalyzer(t, analyzerEnv(f.keys.Prefix, nameA, shards))
	all := func(name string) []string {
		out := make([]string, shards)
		for s := range out {
			out[s] = name
		}
		return out
	}
	poll.Until(t, 10*time.Second, nameA+" alone owns every shard", func() (bool, string) {
		o := owners()
		return reflect.DeepEqual(o, all(nameA)), fmt.Sprint(o)
	})
	p.send(t, genEvents(devices, 200))

	b := startAnalyzer(t, analyzerEnv(f.keys.Prefix, nameB, shards))
	poll.Until(t, 15*time.Second, "shards split by rendezvous hashing", func() (bool, string) {
		o := owners()
		return reflect.DeepEqual(o, split), fmt.Sprintf("%v, want %v", o, split)
	})
	members := f.rc.ZRange(context.Background(), f.keys.Members(), 0, -1).Val()
	if !reflect.DeepEqual(members, []string{nameA, nameB}) {
		t.Errorf("members %v, want both analyzers", members)
	}

	// Events keep coming while A stops.
	var wg sync.WaitGroup
	halfway := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 30; i++ {
			if i == 10 {
				close(halfway)
			}
			p.send(t, genEvents(devices, 20))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-halfway
	stopped := time.Now()
	if err := a.Stop(t, 15*time.Second); err != nil {
		t.Errorf("%s: run returned %v, want nil", nameA, err)
	}
	poll.Until(t, 10*time.Second, nameB+" takes every shard over", func() (bool, string) {
		o := owners()
		return reflect.DeepEqual(o, all(nameB)), fmt.Sprint(o)
	})
	t.Logf("%s owned every shard %v after %s was told to stop", nameB, time.Since(stopped).Round(time.Millisecond), nameA)
	wg.Wait()

	events := p.all()
	want := reference(t, events)
	poll.Until(t, 30*time.Second, "every event applied exactly once", func() (bool, string) {
		got := f.storedStates(t, shards, want)
		return reflect.DeepEqual(got, want), fmt.Sprintf("totals %v, want %v", totals(t, got), totals(t, want))
	})
	var processed int64
	for s := 0; s < shards; s++ {
		processed += f.processed(t, s)
	}
	if processed != int64(len(events)) {
		t.Errorf("stats processed %d, want %d", processed, len(events))
	}
	if m := f.rc.ZRange(context.Background(), f.keys.Members(), 0, -1).Val(); !reflect.DeepEqual(m, []string{nameB}) {
		t.Errorf("members %v after %s stopped, want only %s", m, nameA, nameB)
	}
	if err := b.Stop(t, 15*time.Second); err != nil {
		t.Errorf("%s: run returned %v, want nil", nameB, err)
	}
}

// Shutdown releases every lease at once (not by expiry) and leaves the
// member set, so that other analyzers can take over without waiting.
func TestShutdownReleasesLeases(t *testing.T) {
	t.Parallel()
	const shards = 4
	f := newFixture(t)
	env := analyzerEnv(f.keys.Prefix, "leaving", shards)
	env["LEASE_TTL"] = "60s" // were they not released, they would outlive the test
	a := startAnalyzer(t, env)
	poll.Until(t, 10*time.Second, "every shard acquired", func() (bool, string) {
		l := f.leases(t, shards)
		for _, v := range l {
			if owner(v) != "leaving" {
				return false, fmt.Sprint(l)
			}
		}
		return true, ""
	})
	if err := f.rc.ZScore(context.Background(), f.keys.Members(), "leaving").Err(); err != nil {
		t.Fatalf("member not registered: %v", err)
	}

	if err := a.Stop(t, 15*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	for s := 0; s < shards; s++ {
		if n := f.rc.Exists(context.Background(), f.keys.Lease(s)).Val(); n != 0 {
			t.Errorf("lease of shard %d still held after shutdown: %q", s, f.rc.Get(context.Background(), f.keys.Lease(s)).Val())
		}
	}
	if err := f.rc.ZScore(context.Background(), f.keys.Members(), "leaving").Err(); err != redis.Nil {
		t.Errorf("member still registered after shutdown (%v)", err)
	}
}

// An analyzer whose lease is taken stops working on the shard, leaves the
// new holder's lease alone, and resumes once the lease is free again.
func TestAnalyzerStopsOnLostLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	p := &producer{f: f, shards: 1}
	a := startAnalyzer(t, analyzerEnv(f.keys.Prefix, "victim", 1))
	p.send(t, genEvents([]string{"ll-1", "ll-2"}, 50))
	poll.Until(t, 10*time.Second, "first events applied", func() (bool, string) {
		n := f.processed(t, 0)
		return n == 50, fmt.Sprintf("%d processed", n)
	})

	if err := f.rc.Set(ctx, f.keys.Lease(0), "intruder:1000", 0).Err(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the lease loss noticed", func() (bool, string) {
		v, ok := promtext.Value(t, a.scrape(t), "pulse_lease_lost_total", nil)
		return ok && v == 1, fmt.Sprintf("pulse_lease_lost_total %v (present %v)", v, ok)
	})
	p.send(t, genEvents([]string{"ll-1", "ll-2"}, 50))
	time.Sleep(1500 * time.Millisecond) // several ticks in which nothing may happen
	if v := f.rc.Get(ctx, f.keys.Lease(0)).Val(); v != "intruder:1000" {
		t.Errorf("lease %q, want the intruder's untouched", v)
	}
	if n := f.processed(t, 0); n != 50 {
		t.Errorf("%d processed without the lease, want 50", n)
	}

	f.rc.Del(ctx, f.keys.Lease(0))
	want := reference(t, p.all())
	poll.Until(t, 10*time.Second, "work resumed once the lease is free", func() (bool, string) {
		got := f.storedStates(t, 1, want)
		return reflect.DeepEqual(got, want), fmt.Sprintf("totals %v, want %v", totals(t, got), totals(t, want))
	})
	if o := owner(f.rc.Get(ctx, f.keys.Lease(0)).Val()); o != "victim" {
		t.Errorf("lease owner %q, want victim", o)
	}
	if err := a.Stop(t, 15*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	proctest.RunRejects(t, run, func(t *testing.T) map[string]string { return analyzerEnv(redisSrv.Prefix(t), "cfg", 1) },
		"SHARDS=0",
		"LEASE_TTL=500ms",
		"LEASE_TTL=soon",
		"READ_COUNT=x",
		"READ_COUNT=0",
		"MIN_SAMPLES=60", // above WINDOW_SIZE (50)
		"DETECTOR=psychic",
		"Z_THRESHOLD=-1",
		"WINDOW_SIZE=1",
		"REDIS_TIMEOUT=abc",
		"ALERT_THRESHOLD=1.5",
		"ALERT_RECOVERY=0",
		"ALERTMANAGER_URL=alertmanager:9093",
		"ALERT_RESEND=0s",
		"ALERT_OUTBOX_MAX=-1",
	)
}
