package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

// snapshot returns the content of every key of the prefix but the lease
// and fence, so that a test can tell whether anything changed. (Not DUMP:
// a hash's serialization may change order while Redis rehashes on reads.)
func (f *fixture) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := f.rc.Scan(ctx, 0, f.keys.Prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if strings.HasPrefix(k, f.keys.Prefix+":lease:") || strings.HasPrefix(k, f.keys.Prefix+":fence:") {
			continue
		}
		var v any
		var err error
		switch typ := f.rc.Type(ctx, k).Val(); typ {
		case "string":
			v, err = f.rc.Get(ctx, k).Result()
		case "hash":
			v, err = f.rc.HGetAll(ctx, k).Result()
		case "list":
			v, err = f.rc.LRange(ctx, k, 0, -1).Result()
		case "zset":
			v, err = f.rc.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = f.streamSnapshot(ctx, k)
		default:
			t.Fatalf("key %s of type %q", k, typ)
		}
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		out[k] = fmt.Sprintf("%v", v)
	}
	return out
}

// streamSnapshot is a stream's entries and its group's state: delivery
// position and every pending entry with its consumer and delivery count.
func (f *fixture) streamSnapshot(ctx context.Context, key string) (any, error) {
	entries, err := f.rc.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		return nil, err
	}
	groups, err := f.rc.XInfoGroups(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	type pend struct {
		ID, Consumer string
		Deliveries   int64
	}
	var pending []pend
	for _, g := range groups {
		ext, err := f.rc.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: g.Name, Start: "-", End: "+", Count: 100000}).Result()
		if err != nil {
			return nil, err
		}
		for _, p := range ext {
			pending = append(pending, pend{p.ID, p.Consumer, p.RetryCount})
		}
	}
	return []any{entries, groups, pending}, nil
}

// A worker whose lease is gone — another lease was granted, or it expired —
// is refused by every script: it gets errLeaseLost and changes nothing,
// neither results nor the consumer group (its entries stay pending).
func TestFencedWorkerWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		lose func(f *fixture) error
		op   func(w *shardWorker, batch []analysis.Entry) error
	}{
		{"apply after another lease was granted", grantOther, applyHeld},
		{"apply after the lease expired", expire, applyHeld},
		{"load and claim", grantOther, func(w *shardWorker, _ []analysis.Entry) error { return w.load(ctx) }},
		{"run", grantOther, func(w *shardWorker, _ []analysis.Entry) error { return w.run(ctx) }},
		{"run after the lease expired", expire, func(w *shardWorker, _ []analysis.Entry) error { return w.run(ctx) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.createGroup(t, 0)
			lease := f.grant(t, 0, "a")
			f.add(t, 0, genEvents([]string{"d1", "d2"}, 20))
			w := f.worker(t, 0, lease, "a", 10)
			first := firstBatch(t, w, 10)
			if err := w.apply(first); err != nil {
				t.Fatalf("apply while holding the lease: %v", err)
			}
			held, err := w.read(ctx, false) // delivered, not yet applied
			if err != nil || len(held) != 10 {
				t.Fatalf("read: %d entries, %v", len(held), err)
			}
			before := f.snapshot(t)

			if err := tc.lose(f); err != nil {
				t.Fatal(err)
			}
			err = tc.op(w, held)
			if !errors.Is(err, errLeaseLost) {
				t.Errorf("got %v, want errLeaseLost", err)
			}
			if after := f.snapshot(t); !reflect.DeepEqual(after, before) {
				t.Errorf("a fenced worker changed keys: %v", changed(before, after))
			}
			if n := f.pending(t, 0); n != 10 {
				t.Errorf("%d entries pending, want the 10 held ones still unacknowledged", n)
			}
			if n := testutil.ToFloat64(w.m.processed); n != 10 {
				t.Errorf("pulse_events_processed_total = %v, want 10 (the batch applied before the lease was lost)", n)
			}
		})
	}
}

func applyHeld(w *shardWorker, held []analysis.Entry) error { return w.apply(held) }

// grantOther makes another analyzer the lease holder, as the coordinator
// would after this one's lease expired.
func grantOther(f *fixture) error {
	ctx := context.Background()
	token, err := f.rc.Incr(ctx, f.keys.Fence(0)).Result()
	if err != nil {
		return err
	}
	return f.rc.Set(ctx, f.keys.Lease(0), fmt.Sprintf("b:%d", token), time.Minute).Err()
}

func expire(f *fixture) error {
	return f.rc.Del(context.Background(), f.keys.Lease(0)).Err()
}

func changed(before, after map[string]string) []string {
	var keys []string
	for k, v := range after {
		if before[k] != v {
			keys = append(keys, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			keys = append(keys, k+" (deleted)")
		}
	}
	return keys
}

// Entries a consumer read and never acknowledged (it died) are claimed by
// the next lease holder and applied exactly once, before newer entries, so
// every device's state is what applying its events in order gives.
func TestWorkerClaimsEntriesOfDeadConsumer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.createGroup(t, 0)
	events := f.add(t, 0, genEvents([]string{"c1", "c2", "c3"}, 300))
	dead, err := f.rc.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: shard.Group, Consumer: "dead", Streams: []string{f.keys.Stream(0), ">"}, Count: 120,
	}).Result()
	if err != nil || len(dead[0].Messages) != 120 {
		t.Fatalf("dead consumer's read: %v", err)
	}
	want := reference(t, events)

	w := f.worker(t, 0, f.grant(t, 0, "new"), "new", 50)
	f.runUntilProcessed(t, w, int64(len(events)))

	if got := f.storedStates(t, 1, want); !reflect.DeepEqual(got, want) {
		t.Errorf("device totals %v, want %v (every event applied once, in order)", totals(t, got), totals(t, want))
	}
	if n := f.processed(t, 0); n != int64(len(events)) {
		t.Errorf("stats processed = %d, want %d", n, len(events))
	}
	if n := testutil.ToFloat64(f.m.duplicates); n != 0 {
		t.Errorf("%v duplicates skipped, want 0", n)
	}
	if n := f.pending(t, 0); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
}

// Entries that are not events are dead-lettered with their reason and
// payload, acknowledged, counted, and do not hold up the shard.
func TestMalformedEntriesAreDeadLettered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	valid := genEvents([]string{"dl-1"}, 4)
	type bad struct {
		id     string
		fields []string
	}
	var bads []bad
	addBad := func(fields ...string) {
		bads = append(bads, bad{f.addRaw(t, 0, fields...), fields})
	}
	var good []sent
	good = append(good, f.add(t, 0, valid[:1])...)
	addBad("foo", "bar")
	addBad("d", "dl-1", "c", "500", "r", "1", "t", "1700000000", "rt", "1")
	addBad("d", "bad id", "c", "1", "r", "1", "t", "1700000000", "rt", "1")
	good = append(good, f.add(t, 0, valid[1:2])...)
	addBad(append(valid[2].Values(), "extra", "1")...)
	addBad("d", "dl-1", "c", "1", "r", "NaN", "t", "1700000000", "rt", "1")
	good = append(good, f.add(t, 0, valid[2:3])...)

	env := analyzerEnv(f.keys.Prefix, "dl", 1)
	env["READ_COUNT"] = "2" // malformed entries alone and mixed with valid ones in batches
	a := startAnalyzer(t, env)

	check := func(wantGood []sent, wantBad []bad) {
		t.Helper()
		want := reference(t, wantGood)
		poll.Until(t, 20*time.Second, "valid entries applied", func() (bool, string) {
			got := f.storedStates(t, 1, want)
			return reflect.DeepEqual(got, want), fmt.Sprintf("totals %v, want %v", totals(t, got), totals(t, want))
		})
		poll.Until(t, 20*time.Second, "every entry acknowledged", func() (bool, string) {
			n := f.pending(t, 0)
			return n == 0, fmt.Sprintf("%d pending", n)
		})
		msgs, err := f.rc.XRange(ctx, f.keys.DeadLetter(0), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != len(wantBad) {
			t.Fatalf("%d dead letters, want %d", len(msgs), len(wantBad))
		}
		for i, m := range msgs {
			var payload map[string]string
			if err := json.Unmarshal([]byte(fmt.Sprint(m.Values["entry"])), &payload); err != nil {
				t.Errorf("dead letter %d: entry %v: %v", i, m.Values["entry"], err)
			}
			wantPayload := map[string]string{}
			for j := 0; j+1 < len(wantBad[i].fields); j += 2 {
				wantPayload[wantBad[i].fields[j]] = wantBad[i].fields[j+1]
			}
			if m.Values["id"] != wantBad[i].id || m.Values["reason"] != "malformed" || !reflect.DeepEqual(payload, wantPayload) {
				t.Errorf("dead letter %d: %v, want id %s, reason malformed, entry %v", i, m.Values, wantBad[i].id, wantPayload)
			}
		}
		expo := a.scrape(t)
		if v, ok := promtext.Value(t, expo, "pulse_events_deadlettered_total", map[string]string{"reason": "malformed"}); !ok || v != float64(len(wantBad)) {
			t.Errorf(`pulse_events_deadlettered_total{reason="malformed"} = %v (present %v), want %d`, v, ok, len(wantBad))
		}
		if v, ok := promtext.Value(t, expo, "pulse_events_processed_total", nil); !ok || v != float64(len(wantGood)) {
			t.Errorf("pulse_events_processed_total = %v (present %v), want %d", v, ok, len(wantGood))
		}
	}
	check(good, bads)

	// The shard keeps going: a later garbage entry and a valid one.
	addBad("d", "dl-1")
	good = append(good, f.add(t, 0, valid[3:4])...)
	check(good, bads)
}

// The write script trims what is processed: the stream stays short, but
// no entry that is pending (delivered, not acknowledged) or not yet
// delivered is ever removed.
func TestStreamIsTrimmedBehindProcessing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.createGroup(t, 0)
	devices := make([]string, 20)
	for i := range devices {
		devices[i] = fmt.Sprintf("trim-%02d", i)
	}
	// The five oldest entries are of devices of their own, so that applying
	// them after newer entries is not mistaken for redelivery.
	events := f.add(t, 0, genEvents([]string{"held-0", "held-1", "held-2", "held-3", "held-4"}, 5))
	events = append(events, f.add(t, 0, genEvents(devices, 1995))...)
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	// A consumer that dies holding the five oldest entries.
	if err := f.rc.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: shard.Group, Consumer: "dead", Streams: []string{f.keys.Stream(0), ">"}, Count: 5,
	}).Err(); err != nil {
		t.Fatal(err)
	}
	w := f.worker(t, 0, f.grant(t, 0, "w"), "w", 50)
	if err := w.load(ctx); err != nil { // claims the five
		t.Fatal(err)
	}
	step := func(id string, batches int) {
		t.Helper()
		for i := 0; i < batches; i++ {
			entries, err := w.read(ctx, id == "0")
			if err != nil || len(entries) == 0 {
				t.Fatalf("read %s: %d entries, %v", id, len(entries), err)
			}
			if err := w.apply(entries); err != nil {
				t.Fatalf("apply: %v", err)
			}
		}
	}
	streamIDs := func(from string) []string {
		msgs, err := f.rc.XRange(ctx, f.keys.Stream(0), from, "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(msgs))
		for i, m := range msgs {
			out[i] = m.ID
		}
		return out
	}

	step(">", 10) // entries 5..504
	if got := streamIDs("-"); !reflect.DeepEqual(got, ids) {
		t.Errorf("stream holds %d entries from %s, want all 2000: the oldest pending entry bounds the trim", len(got), first(got))
	}

	step("0", 1)  // the five claimed ones
	step(">", 10) // entries 505..1004
	if got := streamIDs("(" + ids[1004]); !reflect.DeepEqual(got, ids[1005:]) {
		t.Errorf("after entry 1004: %d entries, want the 995 not yet delivered", len(got))
	}
	// Trimming is approximate (whole stream nodes of up to 100 entries).
	if n := f.rc.XLen(ctx, f.keys.Stream(0)).Val(); n > 995+100 {
		t.Errorf("stream length %d after 1005 of 2000 entries were processed, want at most %d", n, 995+100)
	}

	f.runUntilProcessed(t, w, 2000)
	if n := f.processed(t, 0); n != 2000 {
		t.Errorf("%d entries processed, want 2000", n)
	}
	if n := f.rc.XLen(ctx, f.keys.Stream(0)).Val(); n > 100 || n < 1 {
		t.Errorf("stream length %d once everything is processed, want 1 to 100", n)
	}
	want := reference(t, events)
	if got := f.storedStates(t, 1, want); !reflect.DeepEqual(got, want) {
		t.Errorf("device totals %v, want %v", totals(t, got), totals(t, want))
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return s[0]
}

// A former owner that paused past its lease may still read new entries
// into its own pending list (reads are not fenced). The owner's next write
// is refused (FOREIGN) until it has claimed them; it then applies them
// before the newer ones, so every device sees its events once, in order.
func TestEntriesReadByAFormerOwnerAreClaimedAndAppliedInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.createGroup(t, 0)
	events := f.add(t, 0, genEvents([]string{"z1", "z2"}, 60))
	want := reference(t, events)

	zombie := f.worker(t, 0, "zombie:0", "zombie", 10)
	zombie.recent = &state.Recent{Size: testWindow} // it loaded before it lost the lease
	owner := f.worker(t, 0, f.grant(t, 0, "owner"), "owner", 10)
	first := firstBatch(t, owner, 10)
	if err := owner.apply(first); err != nil {
		t.Fatalf("owner apply: %v", err)
	}
	stolen, err := zombie.read(ctx, false) // entries 11-20, into the zombie's pending list
	if err != nil || len(stolen) != 10 {
		t.Fatalf("zombie read: %d entries, %v", len(stolen), err)
	}
	if err := zombie.apply(stolen); !errors.Is(err, errLeaseLost) {
		t.Fatalf("zombie apply = %v, want errLeaseLost", err)
	}
	newer, err := owner.read(ctx, false) // entries 21-30
	if err != nil || len(newer) != 10 {
		t.Fatalf("owner read: %d entries, %v", len(newer), err)
	}
	if err := owner.apply(newer); !errors.Is(err, errForeignPending) {
		t.Fatalf("owner apply past the zombie's entries = %v, want errForeignPending", err)
	}

	f.runUntilProcessed(t, owner, int64(len(events)))
	if got := f.storedStates(t, 1, want); !reflect.DeepEqual(got, want) {
		t.Errorf("device totals %v, want %v (every event applied once, in order)", totals(t, got), totals(t, want))
	}
	if n := testutil.ToFloat64(f.m.duplicates); n != 0 {
		t.Errorf("%v duplicates skipped, want 0", n)
	}
	if n := f.pending(t, 0); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
}

func TestBackoffDoublesUpToItsCap(t *testing.T) {
	var b retry
	var got []time.Duration
	for range 9 {
		got = append(got, b.next())
	}
	ms := time.Millisecond
	want := []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms, 2000 * ms}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	b.reset()
	if d := b.next(); d != 50*ms {
		t.Errorf("after reset the first wait is %v, want 50ms", d)
	}
}

// A reply naming several streams keeps every stream's entries, in order.
func TestEntriesOfEveryStreamOfAReply(t *testing.T) {
	res := []redis.XStream{
		{Stream: "a", Messages: []redis.XMessage{{ID: "1-0", Values: map[string]any{"k": "1"}}, {ID: "2-0"}}},
		{Stream: "b", Messages: []redis.XMessage{{ID: "3-0"}}},
	}
	var ids []string
	for _, e := range entriesOf(res) {
		ids = append(ids, e.ID)
	}
	if want := []string{"1-0", "2-0", "3-0"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("entries %v, want %v", ids, want)
	}
}

// alertingEvents are 600 events of two devices, 30 s apart, with a level
// shift of rps after the scores' warm-up that opens alerts.
func alertingEvents() []stream.Event {
	gen := genEvents([]string{"s1", "s2"}, 600)
	for i := range gen {
		gen[i].Timestamp = 1_700_000_000 + 30*float64(i)
		if i >= 500 && i < 520 {
			gen[i].RPS += 400
		}
	}
	return gen
}

// pulse_alerts_opened_total counts the alerts the worker's batches
// opened: as many as applying the events in one process opens.
func TestWorkerCountsAlertsOpened(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createGroup(t, 0)
	events := f.add(t, 0, alertingEvents())
	ref, _ := applyInOrder(t, events)
	if ref.AlertsOpened == 0 {
		t.Fatal("test data: no alert opens")
	}

	w := f.worker(t, 0, f.grant(t, 0, "a"), "a", 64)
	f.runUntilProcessed(t, w, int64(len(events)))
	if n := testutil.ToFloat64(f.m.alertsOpened); n != float64(ref.AlertsOpened) {
		t.Errorf("pulse_alerts_opened_total = %v, want %d", n, ref.AlertsOpened)
	}
}

// sendRecorder records what a worker asks of its alert sender.
type sendRecorder struct {
	mu    sync.Mutex
	runs  []notify.Keys
	ended int // runs whose context ended
	wakes int
}

func (r *sendRecorder) Run(ctx context.Context, keys notify.Keys) error {
	r.mu.Lock()
	r.runs = append(r.runs, keys)
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.ended++
	r.mu.Unlock()
	return nil
}

func (r *sendRecorder) Wake() {
	r.mu.Lock()
	r.wakes++
	r.mu.Unlock()
}

// With delivery on, a worker delivers its shard's alerts while it runs
// (and only then), queues every alert change in the shard's outbox in the
// batch's write, and wakes the sender after batches that changed alerts.
func TestWorkerQueuesAndDeliversItsShardsAlerts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createGroup(t, 1)
	events := f.add(t, 1, alertingEvents())
	rec := &sendRecorder{}
	w := f.worker(t, 1, f.grant(t, 1, "a"), "a", 64)
	w.alerts, w.outboxMax = rec, 1000
	f.runUntilProcessedOf(t, w, 1, int64(len(events)))

	keys := notify.KeysFor(f.keys.Prefix, 1)
	entries, err := notify.Peek(context.Background(), f.rdb, keys, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	opened := testutil.ToFloat64(f.m.alertsOpened)
	var outboxOpened int
	for _, e := range entries {
		if e.Err != nil {
			t.Fatal(e.Err)
		}
		if e.Alert.State == notify.StateOpen {
			outboxOpened++
		}
	}
	if opened == 0 || float64(outboxOpened) != opened {
		t.Errorf("outbox holds %d openings (%d entries), the worker opened %v", outboxOpened, len(entries), opened)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.runs) != 1 || rec.runs[0] != keys || rec.ended != 1 {
		t.Errorf("sender runs %+v, %d ended; want one for %+v, ended with the worker", rec.runs, rec.ended, keys)
	}
	if rec.wakes == 0 || rec.wakes > len(entries) {
		t.Errorf("%d wakes for %d alert changes", rec.wakes, len(entries))
	}
}

// runUntilProcessed runs w until shard 0 has processed at least n events,
// then stops it; run must return nil.
func (f *fixture) runUntilProcessed(t *testing.T, w *shardWorker, n int64) {
	t.Helper()
	f.runUntilProcessedOf(t, w, 0, n)
}

// runUntilProcessedOf is runUntilProcessed for shard s.
func (f *fixture) runUntilProcessedOf(t *testing.T, w *shardWorker, s int, n int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	poll.Until(t, 30*time.Second, "all events applied", func() (bool, string) {
		got := f.processed(t, s)
		return got >= n, fmt.Sprintf("%d processed", got)
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
}

// A worker keeps the states it wrote while it holds the lease, reads
// only the others' from Redis, and drops them all after a failure.
func TestWorkerKeepsTheStatesItWroteUntilAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.createGroup(t, 0)
	f.add(t, 0, genEvents([]string{"k1"}, 10))
	owner := f.worker(t, 0, f.grant(t, 0, "owner"), "owner", 10)
	if err := owner.apply(firstBatch(t, owner, 10)); err != nil {
		t.Fatal(err)
	}
	if st := owner.states["k1"]; st == nil || st.Total != 10 {
		t.Fatalf("kept state %+v, want k1's after 10 events", st)
	}
	// While the lease is held, the kept state is the truth: a state that
	// changed behind the owner's back (no one else can write it) is not
	// read again.
	if err := f.rc.HDel(ctx, f.keys.DeviceStates(0), "k1").Err(); err != nil {
		t.Fatal(err)
	}
	f.add(t, 0, genEvents([]string{"k1"}, 10))
	next, err := owner.read(ctx, false)
	if err != nil || len(next) != 10 {
		t.Fatalf("read: %d entries, %v", len(next), err)
	}
	if err := owner.apply(next); err != nil {
		t.Fatal(err)
	}
	raw, err := f.rc.HGet(ctx, f.keys.DeviceStates(0), "k1").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := state.DecodeDevice(raw, testWindow); err != nil || st.Total != 20 {
		t.Fatalf("written state %+v (%v), want 20 events: from the kept state", st, err)
	}
	// A failed write may have changed them in place: all are dropped.
	if err := expire(f); err != nil {
		t.Fatal(err)
	}
	f.add(t, 0, genEvents([]string{"k1"}, 5))
	more, err := owner.read(ctx, false)
	if err != nil || len(more) != 5 {
		t.Fatalf("read: %d entries, %v", len(more), err)
	}
	if err := owner.apply(more); !errors.Is(err, errLeaseLost) {
		t.Fatalf("apply without the lease = %v, want errLeaseLost", err)
	}
	if len(owner.states) != 0 {
		t.Fatalf("%d states kept after a failed write, want none", len(owner.states))
	}
}

func TestKeptStatesAreBounded(t *testing.T) {
	w := &shardWorker{states: map[string]*state.Device{}}
	batch := map[string]*state.Device{}
	for i := range stateCacheMax + 10 {
		w.states[fmt.Sprint("old-", i)] = state.NewDevice(testWindow)
	}
	for i := range 20 {
		batch[fmt.Sprint("new-", i)] = state.NewDevice(testWindow)
	}
	w.keepStates(batch)
	if len(w.states) > stateCacheMax {
		t.Fatalf("%d states kept, at most %d", len(w.states), stateCacheMax)
	}
	for id := range batch {
		if w.states[id] == nil {
			t.Fatalf("the batch's %s was not kept", id)
		}
	}
}
