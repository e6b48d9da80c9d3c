package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
)

// The tests of this file take from an analyzer what Redis can lose at any
// moment — FLUSHALL, a restart without persistence, a replica promoted
// empty — emulated on the package's shared server by deleting every key
// of the test's prefix in one command.

// load recreates a consumer group Redis lost, whether the stream went with
// it or ingest has created it again by appending: every entry in the
// stream is then delivered.
func TestLoadRecreatesAMissingGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		stream bool // ingest appended to the stream again before the analyzer came
	}{
		{"stream and group missing", false},
		{"stream recreated by ingest, group missing", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var events []sent
			if tc.stream {
				events = f.add(t, 0, genEvents([]string{"g1", "g2"}, 6))
			}
			w := f.worker(t, 0, f.grant(t, 0, "a"), "a", 10)
			if err := w.load(ctx); err != nil {
				t.Fatalf("load: %v", err)
			}
			events = append(events, f.add(t, 0, genEvents([]string{"g1", "g2"}, 4))...)
			got, err := w.read(ctx, false)
			if err != nil {
				t.Fatalf("read after load: %v", err)
			}
			if len(got) != len(events) {
				t.Fatalf("read %d entries, want every one of the %d in the stream", len(got), len(events))
			}
			for i := range got {
				if got[i].ID != events[i].ID {
					t.Errorf("entry %d: %s, want %s", i, got[i].ID, events[i].ID)
				}
			}
		})
	}
}

// When Redis loses the fence counter with everything else, the tokens
// granted afterwards must not repeat earlier ones: an owner of the same
// name holding a lease from before the loss (paused, or a second process
// of the same name) would otherwise match the new lease and write.
func TestLeaseFromBeforeALossIsFenced(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createGroup(t, 0)
	old := f.grant(t, 0, "a")
	f.add(t, 0, genEvents([]string{"f1", "f2"}, 20))
	stale := f.worker(t, 0, old, "a", 10)
	held := firstBatch(t, stale, 10)

	f.wipe(t)
	// The shard starts again: a group, new events, a new lease for "a".
	f.createGroup(t, 0)
	f.add(t, 0, genEvents([]string{"f1", "f2"}, 5))
	again := f.grant(t, 0, "a")
	if again == old {
		t.Errorf("lease %q granted again after the fence counter was lost", again)
	}
	before := f.snapshot(t)
	if err := stale.apply(held); !errors.Is(err, errLeaseLost) {
		t.Errorf("apply with the lease from before the loss = %v, want errLeaseLost", err)
	}
	if after := f.snapshot(t); !reflect.DeepEqual(after, before) {
		t.Errorf("a worker with a lease from before the loss changed keys: %v", changed(before, after))
	}
}

// An analyzer running while Redis loses everything notices that its leases
// are gone, takes its shards again with new tokens, recreates the consumer
// groups and analyzes, exactly once, every event appended afterwards; its
// lag gauges come back and it stays ready.
func TestAnalyzerRecoversWhenRedisLosesEverything(t *testing.T) {
	t.Parallel()
	const shards = 2
	f := newFixture(t)
	devices := []string{"wipe-1", "wipe-2", "wipe-3", "wipe-4", "wipe-5", "wipe-6"}
	a := startAnalyzer(t, analyzerEnv(f.keys.Prefix, "survivor", shards))
	first := &producer{f: f, shards: shards}
	first.send(t, genEvents(devices, 120))
	processed := func() int64 {
		var n int64
		for s := 0; s < shards; s++ {
			n += f.processed(t, s)
		}
		return n
	}
	poll.Until(t, 15*time.Second, "events before the loss applied", func() (bool, string) {
		n := processed()
		return n == 120, fmt.Sprintf("%d processed", n)
	})
	leasesBefore := f.leases(t, shards)

	f.wipe(t)
	p := &producer{f: f, shards: shards}
	p.send(t, genEvents(devices, 200))
	want := reference(t, p.all())
	poll.Until(t, 20*time.Second, "events sent after the loss applied exactly once", func() (bool, string) {
		got := f.storedStates(t, shards, want)
		return reflect.DeepEqual(got, want), fmt.Sprintf("totals %v, want %v", totals(t, got), totals(t, want))
	})
	if n := processed(); n != 200 {
		t.Errorf("stats processed %d after the loss, want 200", n)
	}
	for s, l := range f.leases(t, shards) {
		if owner(l) != "survivor" || l == leasesBefore[s] {
			t.Errorf("shard %d lease %q (before the loss %q), want survivor's with a new token", s, l, leasesBefore[s])
		}
	}
	poll.Until(t, 15*time.Second, "lag gauges back, every shard healthy, ready", func() (bool, string) {
		expo := a.scrape(t)
		var bad []string
		for s := 0; s < shards; s++ {
			l := map[string]string{"shard": strconv.Itoa(s)}
			if v, ok := promtext.Value(t, expo, "pulse_shard_lag", l); !ok || v != 0 {
				bad = append(bad, fmt.Sprintf("pulse_shard_lag{shard=%q} = %v (present %v)", l["shard"], v, ok))
			}
			if v, ok := promtext.Value(t, expo, "pulse_shard_healthy", l); !ok || v != 1 {
				bad = append(bad, fmt.Sprintf("pulse_shard_healthy{shard=%q} = %v (present %v)", l["shard"], v, ok))
			}
		}
		if code, body := a.ready(t); code != http.StatusOK {
			bad = append(bad, fmt.Sprintf("/ready %d %s", code, body))
		}
		return len(bad) == 0, strings.Join(bad, "; ")
	})
	if v, ok := promtext.Value(t, a.scrape(t), "pulse_lease_lost_total", nil); !ok || v < 1 {
		t.Errorf("pulse_lease_lost_total = %v (present %v), want the loss counted", v, ok)
	}
	for s := 0; s < shards; s++ {
		if n := f.pending(t, s); n != 0 {
			t.Errorf("shard %d: %d entries pending", s, n)
		}
	}
}

// While a shard cannot be read (here its stream key holds a string, so no
// group can be created and no read succeeds), the analyzer is not ready,
// names the shard, reports it unhealthy and its lag and pending as
// unknown (NaN), never as 0; once the shard is readable again, all is
// back by itself.
func TestUnreadableShardIsReportedNotHidden(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const shards = 2
	f := newFixture(t)
	a := startAnalyzer(t, analyzerEnv(f.keys.Prefix, "watcher", shards))
	healthy := func(s int) (bool, string) {
		expo := a.scrape(t)
		l := map[string]string{"shard": strconv.Itoa(s)}
		lag, okLag := promtext.Value(t, expo, "pulse_shard_lag", l)
		h, okH := promtext.Value(t, expo, "pulse_shard_healthy", l)
		return okLag && okH && lag == 0 && h == 1, fmt.Sprintf("shard %d: lag %v healthy %v (present %v %v)", s, lag, h, okLag, okH)
	}
	poll.Until(t, 15*time.Second, "both shards healthy", func() (bool, string) {
		ok0, st0 := healthy(0)
		ok1, st1 := healthy(1)
		return ok0 && ok1, st0 + "; " + st1
	})

	if err := f.rc.Del(ctx, f.keys.Stream(1)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rc.Set(ctx, f.keys.Stream(1), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "shard 1 reported broken", func() (bool, string) {
		code, body := a.ready(t)
		expo := a.scrape(t)
		l := map[string]string{"shard": "1"}
		lag, okLag := promtext.Value(t, expo, "pulse_shard_lag", l)
		pending, okPending := promtext.Value(t, expo, "pulse_shard_pending", l)
		h, okH := promtext.Value(t, expo, "pulse_shard_healthy", l)
		ok := code == http.StatusServiceUnavailable && strings.Contains(body, "shard 1") && !strings.Contains(body, "shard 0") &&
			okLag && okPending && okH && math.IsNaN(lag) && math.IsNaN(pending) && h == 0
		return ok, fmt.Sprintf("/ready %d %s; lag %v pending %v healthy %v (present %v %v %v)", code, body, lag, pending, h, okLag, okPending, okH)
	})
	if ok, st := healthy(0); !ok {
		t.Errorf("the readable shard: %s, want lag 0 healthy 1", st)
	}

	if err := f.rc.Del(ctx, f.keys.Stream(1)).Err(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "shard 1 back by itself", func() (bool, string) {
		ok, st := healthy(1)
		code, body := a.ready(t)
		return ok && code == http.StatusOK, fmt.Sprintf("%s; /ready %d %s", st, code, body)
	})
	if err := f.rc.XInfoGroups(ctx, f.keys.Stream(1)).Err(); err != nil {
		t.Errorf("shard 1's group: %v", err)
	}
	groups := f.rc.XInfoGroups(ctx, f.keys.Stream(1)).Val()
	if len(groups) != 1 || groups[0].Name != shard.Group {
		t.Errorf("shard 1 groups %+v, want %s", groups, shard.Group)
	}
}

// ready returns the analyzer's /ready status and body.
func (a *runningAnalyzer) ready(t *testing.T) (int, string) {
	t.Helper()
	return a.get(t, "/ready")
}
