package results

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

var srv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &srv)) }

const (
	testShards = 2
	testWindow = 5
	lease      = "a:1"
	consumer   = "a"
)

// addEvents writes events to their shards' streams as ingest does.
func addEvents(t *testing.T, rdb redis.UniversalClient, keys shard.Keys, events []stream.Event) {
	t.Helper()
	ctx := context.Background()
	for _, e := range events {
		err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(shard.For(e.DeviceID, testShards)), Values: e.Values()}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readNew reads up to count entries of shard s not yet delivered, as
// consumer of the analyzers' group: none once the stream has no more.
func readNew(t *testing.T, rdb redis.UniversalClient, keys shard.Keys, s int, consumer string, count int64) []analysis.Entry {
	t.Helper()
	res, err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: shard.Group, Consumer: consumer,
		Streams: []string{keys.Stream(s), ">"}, Count: count, Block: -1}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var entries []analysis.Entry
	for _, m := range res[0].Messages {
		entries = append(entries, analysis.Entry{ID: m.ID, Values: m.Values})
	}
	return entries
}

// applyBatch loads through w the states of the devices of entries and the
// fleet's recent values, and applies entries to them with a, the way an
// analyzer does: b is completed to be written with w.
func applyBatch(t *testing.T, w *Writer, a *analysis.Applier, entries []analysis.Entry, b Batch) Batch {
	t.Helper()
	ctx := context.Background()
	d := analysis.Decode(entries)
	states, corrupt, err := w.States(ctx, d.DeviceIDs, testWindow)
	if err != nil || len(corrupt) > 0 {
		t.Fatalf("states: %v, corrupt %v", err, corrupt)
	}
	recent, err := w.Recent(ctx, testWindow)
	if err != nil {
		t.Fatal(err)
	}
	b.Recent, b.Decoded = recent, d
	b.Result = a.Apply(d, states, recent)
	return b
}

// applyShard reads every entry of shard s as b's consumer and writes its
// results with w, the way an analyzer does.
func applyShard(t *testing.T, rdb redis.UniversalClient, keys shard.Keys, s int, w *Writer, b Batch) error {
	t.Helper()
	entries := readNew(t, rdb, keys, s, b.Consumer, 1000)
	if entries == nil {
		return nil
	}
	return w.Write(context.Background(), applyBatch(t, w, testApplier(t), entries, b))
}

func setup(t *testing.T) (redis.UniversalClient, shard.Keys) {
	t.Helper()
	rdb := srv.Client()
	t.Cleanup(func() { rdb.Close() })
	keys := shard.Keys{Prefix: srv.Prefix(t)}
	for s := 0; s < testShards; s++ {
		if err := rdb.Set(context.Background(), keys.Lease(s), lease, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.XGroupCreateMkStream(context.Background(), keys.Stream(s), shard.Group, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	return rdb, keys
}

// What the writer writes, the reader reads: states, counters, the fleet's
// recent values, anomaly lists (device and fleet), the device list, dead
// letters; and every entry is acknowledged and trimmed.
func TestWriterAndReaderAgree(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	var events []stream.Event
	for i := range 12 {
		rps := 10.0 + float64(i%2)
		if i == 9 {
			rps = 500 // an anomaly of dev-a
		}
		events = append(events, stream.Event{DeviceID: "dev-a", CPU: 50, RPS: rps, Timestamp: 1_700_000_000 + float64(i)})
		events = append(events, stream.Event{DeviceID: "dev-b", CPU: 20, RPS: 7, Timestamp: 1_700_000_000 + float64(i)})
	}
	addEvents(t, rdb, keys, events)
	// A malformed entry is dead-lettered and acknowledged.
	bad := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(0), Values: []any{"junk", "1"}}).Val()

	b := Batch{Lease: lease, Consumer: consumer, Detector: "classic", Window: testWindow, LeaseTTL: time.Minute}
	for s := 0; s < testShards; s++ {
		if err := applyShard(t, rdb, keys, s, NewWriter(rdb, keys, s), b); err != nil {
			t.Fatalf("shard %d: %v", s, err)
		}
	}

	r := NewReader(rdb, keys, testShards, testWindow)
	a, err := r.Device(ctx, "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Total != 12 || a.Anomalies == 0 || a.RPS.Len() != testWindow || a.Last.RPS != 10+float64(11%2) {
		t.Errorf("dev-a: total %d, anomalies %d, window %d, last rps %v", a.Total, a.Anomalies, a.RPS.Len(), a.Last.RPS)
	}
	if _, err := r.Device(ctx, "dev-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown device: %v, want ErrNotFound", err)
	}
	anoms, err := r.Anomalies(ctx, "dev-a", 10)
	if err != nil || len(anoms) != int(a.Anomalies) {
		t.Fatalf("dev-a anomalies %v (%v), want %d", anoms, err, a.Anomalies)
	}
	if anoms[0].Value != 500 && anoms[len(anoms)-1].Value != 500 {
		t.Errorf("dev-a anomalies %+v do not hold the 500 spike", anoms)
	}
	fleet, err := r.Anomalies(ctx, "", 100)
	if err != nil || len(fleet) < len(anoms) {
		t.Fatalf("fleet anomalies %d (%v), want at least %d", len(fleet), err, len(anoms))
	}
	f, err := r.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Processed != 24 || f.Devices != 2 || len(f.Values) != testWindow || !reflect.DeepEqual(f.Detectors, []string{"classic"}) {
		t.Errorf("fleet = %+v", f)
	}
	if f.Lag != 0 || f.Pending != 0 || len(f.LagUnknown)+len(f.PendingUnknown) != 0 {
		t.Errorf("fleet backlog lag %d pending %d unknown %v %v, want all processed", f.Lag, f.Pending, f.LagUnknown, f.PendingUnknown)
	}
	devs, next, err := r.Devices(ctx, "", 10)
	if err != nil || next != "" || len(devs) != 2 || devs[0].DeviceID != "dev-a" || devs[1].TotalProcessed != 12 {
		t.Errorf("devices %+v next %q err %v", devs, next, err)
	}
	dead, err := rdb.XRange(ctx, keys.DeadLetter(0), "-", "+").Result()
	if err != nil || len(dead) != 1 || dead[0].Values["id"] != bad || dead[0].Values["reason"] != analysis.ReasonMalformed {
		t.Errorf("dead letters %+v (%v), want the malformed entry %s", dead, err, bad)
	}
	for s := 0; s < testShards; s++ {
		p, err := rdb.XPending(ctx, keys.Stream(s), shard.Group).Result()
		if err != nil || p.Count != 0 {
			t.Errorf("shard %d pending %+v (%v), want none", s, p, err)
		}
	}
}

// A batch written with a lease that is not the shard's changes nothing;
// nor does one while another consumer holds pending entries.
func TestWriteIsFenced(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	addEvents(t, rdb, keys, []stream.Event{{DeviceID: "dev-a", CPU: 1, RPS: 1, Timestamp: 1_700_000_000}})
	s := shard.For("dev-a", testShards)
	stale := Batch{Lease: "a:0", Consumer: consumer, Detector: "classic", Window: testWindow, LeaseTTL: time.Minute}
	if err := applyShard(t, rdb, keys, s, NewWriter(rdb, keys, s), stale); !errors.Is(err, ErrFenced) {
		t.Fatalf("write with a stale lease = %v, want ErrFenced", err)
	}
	if n, _ := rdb.Exists(ctx, keys.DeviceStates(s), keys.Stats(s)).Result(); n != 0 {
		t.Errorf("a fenced write left %d keys", n)
	}
	// The entry is now pending for consumer a; b may not write past it.
	addEvents(t, rdb, keys, []stream.Event{{DeviceID: "dev-a", CPU: 1, RPS: 2, Timestamp: 1_700_000_001}})
	other := Batch{Lease: lease, Consumer: "b", Detector: "classic", Window: testWindow, LeaseTTL: time.Minute}
	if err := applyShard(t, rdb, keys, s, NewWriter(rdb, keys, s), other); !errors.Is(err, ErrForeignPending) {
		t.Fatalf("write past another consumer's pending entries = %v, want ErrForeignPending", err)
	}
}

// The write script's header names its arguments in the order writeArgs
// appends them: the three must not drift apart.
func TestWriteScriptHeader(t *testing.T) {
	m := regexp.MustCompile(`local ([a-z, ]+) = unpack\(ARGV, 1, (\d+)\)`).FindStringSubmatch(writeSource)
	if m == nil {
		t.Fatal("the write script does not unpack its header")
	}
	names := strings.Split(m[1], ", ")
	if !reflect.DeepEqual(names, header) || m[2] != fmt.Sprint(len(header)) {
		t.Errorf("script header %v (%s), Go header %v", names, m[2], header)
	}
	if !strings.Contains(writeSource, fmt.Sprintf("local a = %d", len(header)+1)) {
		t.Errorf("the script does not start its variable part after the %d header arguments", len(header))
	}
	if !strings.Contains(writeSource, fmt.Sprintf("= unpack(KEYS, 1, %d)", nFixedKeys)) ||
		!strings.Contains(writeSource, fmt.Sprintf("local nfixed = %d", nFixedKeys)) {
		t.Errorf("the script's fixed keys are not the %d of nFixedKeys", nFixedKeys)
	}
	w := NewWriter(nil, shard.Keys{Prefix: "p"}, 0)
	keys, args, err := w.writeArgs(Batch{Lease: "L", Consumer: "C", Detector: "D", Window: 7, LeaseTTL: 3 * time.Second,
		Recent: &state.Recent{Size: 7}, Result: analysis.Result{Processed: 5, AnomalousEvents: 2}, OutboxMax: 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != nFixedKeys {
		t.Errorf("an empty batch has %d keys, want the %d fixed ones", len(keys), nFixedKeys)
	}
	if len(args) != len(header) {
		t.Fatalf("an empty batch has %d arguments, want the %d of the header", len(args), len(header))
	}
	at := func(name string) any { return args[indexOf(header, name)] }
	if at("lease") != "L" || at("group") != shard.Group || at("consumer") != "C" || at("detector") != "D" ||
		at("processed") != 5 || at("anomalous") != 2 || at("keep") != AnomalyHistory || at("window") != 7 || at("ttl") != int64(3000) ||
		at("alertkeep") != AlertHistory || at("nalerts") != 0 || at("nalertdev") != 0 || at("alertmax") != 9 {
		t.Errorf("header arguments %v", args)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// ---- alerts ----

// shiftEvents is n events of each device, in turn, one every 30 s of
// metric time, whose rps shifts level for a while after the scores'
// warm-up (at a different time for each device) and comes back: alerts
// open and close. Device 0's cpu also jumps once.
func shiftEvents(devices []string, n int) []stream.Event {
	var out []stream.Event
	x := uint32(7)
	for j := 0; j < n; j++ {
		for k, d := range devices {
			x = x*1664525 + 1013904223
			noise := float64(x>>16)/65536 - 0.5
			rps := 100 + 10*float64(k) + 8*noise
			cpu := 30 + 2*noise
			if p := (j + 40*k) % 250; p >= 200 && p < 215 {
				rps += 300
			}
			if k == 0 && j >= 330 && j < 345 {
				cpu = 95
			}
			if k == 1 && j >= 487 {
				rps += 500 // still shifted at the end of the longest test
			}
			out = append(out, stream.Event{DeviceID: d, CPU: cpu, RPS: rps, Timestamp: 1_700_000_000 + 30*float64(j)})
		}
	}
	return out
}

// addEntries writes events to their shards' streams as ingest does and
// returns them as entries, with their stream ids, in the order written.
func addEntries(t *testing.T, rdb redis.UniversalClient, keys shard.Keys, events []stream.Event) []analysis.Entry {
	t.Helper()
	ctx := context.Background()
	out := make([]analysis.Entry, len(events))
	for i, e := range events {
		vals := e.Values()
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(shard.For(e.DeviceID, testShards)), Values: vals}).Result()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for j := 0; j < len(vals); j += 2 {
			m[vals[j]] = vals[j+1]
		}
		out[i] = analysis.Entry{ID: id, Values: m}
	}
	return out
}

func testApplier(t *testing.T) *analysis.Applier {
	t.Helper()
	det, err := detector.New("classic", detector.Params{WindowSize: testWindow, MinSamples: 2, Threshold: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	return analysis.NewApplier(det, analysis.DefaultParams(testWindow))
}

// applyAll applies every shard's entries in batches of count, as an
// analyzer does, with delivery's outbox bounded by outboxMax (0: off), and
// returns the alert changes written.
func applyAll(t *testing.T, rdb redis.UniversalClient, keys shard.Keys, count, outboxMax int) []analysis.AlertChange {
	t.Helper()
	ctx := context.Background()
	var changes []analysis.AlertChange
	for s := 0; s < testShards; s++ {
		w, a := NewWriter(rdb, keys, s), testApplier(t)
		for {
			entries := readNew(t, rdb, keys, s, consumer, int64(count))
			if entries == nil {
				break
			}
			b := applyBatch(t, w, a, entries, Batch{Lease: lease, Consumer: consumer, Detector: "classic", Window: testWindow,
				LeaseTTL: time.Minute, OutboxMax: outboxMax})
			changes = append(changes, b.Result.Alerts...)
			if err := w.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return changes
}

// alertsReference applies entries in one process and returns every alert
// as it stands at the end, newest first (by opening stream id, then
// number): the last change of each, or for each signal's current alert
// the device state's view (an open alert's event count moves on).
func alertsReference(t *testing.T, entries []analysis.Entry) []state.Alert {
	t.Helper()
	states := map[string]*state.Device{}
	res := testApplier(t).Apply(analysis.Decode(entries), states, nil)
	last := map[string]state.Alert{}
	for _, c := range res.Alerts {
		last[c.Alert.ID()] = c.Alert
	}
	for id, d := range states {
		for sig := range d.Signals {
			if a, ok := d.Alert(id, sig); ok {
				last[a.ID()] = a
			}
		}
	}
	var out []state.Alert
	for _, a := range last {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b state.Alert) int {
		return newer(ref{a.OpenedID, a.DeviceID, a.Seq}, ref{b.OpenedID, b.DeviceID, b.Seq})
	})
	return out
}

func filterAlerts(list []state.Alert, deviceID, which string, limit int) []state.Alert {
	out := []state.Alert{}
	for _, a := range list {
		if (deviceID == "" || a.DeviceID == deviceID) && selects(which, a) && len(out) < limit {
			out = append(out, a)
		}
	}
	return out
}

// What the writer writes of alerts, the reader reads, per device and for
// the fleet, in each state, newest first, within limits; and the shards'
// counters count them. Open alerts carry their current event count.
func TestAlertsWrittenAndRead(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	devices := []string{"dev-a", "dev-b", "dev-c", "dev-d"}
	spread := map[int]bool{}
	for _, d := range devices {
		spread[shard.For(d, testShards)] = true
	}
	if len(spread) < 2 {
		t.Fatal("test data: the devices must span shards to test merging")
	}
	entries := addEntries(t, rdb, keys, shiftEvents(devices, 490))
	changes := applyAll(t, rdb, keys, 97, 0)
	want := alertsReference(t, entries)
	open := filterAlerts(want, "", AlertsOpen, len(want))
	if len(want) < 8 || len(open) == 0 || len(open) == len(want) {
		t.Fatalf("test data: %d alerts, %d open; built for several of each device, some open at the end", len(want), len(open))
	}
	opened := 0
	for _, c := range changes {
		if c.Change == alert.Opened {
			opened++
		}
	}

	r := NewReader(rdb, keys, testShards, testWindow)
	type query struct {
		device, which string
		limit         int
	}
	queries := []query{{"", AlertsAll, 100}, {"", AlertsAll, 3}, {"", AlertsOpen, 100}, {"", AlertsOpen, 1},
		{"", AlertsClosed, 100}, {"", AlertsClosed, 2}}
	for _, d := range devices {
		queries = append(queries, query{d, AlertsAll, 1000}, query{d, AlertsAll, 2}, query{d, AlertsOpen, 100},
			query{d, AlertsClosed, 100}, query{d, AlertsClosed, 1})
	}
	for _, q := range queries {
		got, err := r.Alerts(ctx, q.device, q.which, q.limit)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if w := filterAlerts(want, q.device, q.which, q.limit); !reflect.DeepEqual(got, w) {
			t.Errorf("alerts %+v:\n got %+v\nwant %+v", q, got, w)
		}
	}
	if _, err := r.Alerts(ctx, "dev-none", AlertsAll, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("alerts of an unknown device: %v, want ErrNotFound", err)
	}
	if _, err := r.Alerts(ctx, "", "pending", 10); !errors.Is(err, ErrBadAlertState) {
		t.Errorf("alerts in state pending: %v, want ErrBadAlertState", err)
	}
	f, err := r.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.AlertsOpen != int64(len(open)) || f.AlertsOpened != int64(len(want)) || opened != len(want) {
		t.Errorf("fleet counts %d open, %d opened (changes: %d opened); want %d, %d", f.AlertsOpen, f.AlertsOpened, opened, len(open), len(want))
	}
	// The shards' sets and lists hold what the records say.
	for s := 0; s < testShards; s++ {
		var wantOpen, wantRefs []string
		for _, a := range want {
			if shard.For(a.DeviceID, testShards) != s {
				continue
			}
			wantRefs = append(wantRefs, alertRef(a))
			if a.Open {
				wantOpen = append(wantOpen, alertRef(a))
			}
		}
		gotOpen := rdb.SMembers(ctx, keys.OpenAlerts(s)).Val()
		slices.Sort(gotOpen)
		slices.Sort(wantOpen)
		if !slices.Equal(gotOpen, wantOpen) {
			t.Errorf("shard %d open set %q, want %q", s, gotOpen, wantOpen)
		}
		if got := rdb.LRange(ctx, keys.Alerts(s), 0, -1).Val(); !slices.Equal(got, wantRefs) {
			t.Errorf("shard %d list %q, want %q", s, got, wantRefs)
		}
	}
}

// With delivery on, every alert change enters its shard's outbox in the
// same write, in stream order, as the record Alertmanager is told about;
// the open hash holds exactly the open alerts; a full outbox drops its
// oldest entries and counts them. With delivery off nothing is queued.
func TestAlertsQueuedForDelivery(t *testing.T) {
	devices := []string{"dev-a", "dev-b", "dev-c", "dev-d"}
	for _, tc := range []struct {
		name      string
		outboxMax int
	}{{"off", 0}, {"on", 100000}, {"bounded", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, keys := setup(t)
			ctx := context.Background()
			addEntries(t, rdb, keys, shiftEvents(devices, 490))
			changes := applyAll(t, rdb, keys, 97, tc.outboxMax)
			perShard := map[int][]notify.Alert{}
			open := map[int]map[string]notify.Alert{}
			for _, c := range changes {
				s := shard.For(c.Alert.DeviceID, testShards)
				a := AlertRecord(c.Alert)
				perShard[s] = append(perShard[s], a)
				if open[s] == nil {
					open[s] = map[string]notify.Alert{}
				}
				if a.State == notify.StateOpen {
					open[s][a.ID] = a
				} else {
					delete(open[s], a.ID)
				}
			}
			if len(perShard) < 2 {
				t.Fatal("test data: alerts must span shards")
			}
			for s := 0; s < testShards; s++ {
				k := notify.KeysFor(keys.Prefix, s)
				entries, err := notify.Peek(ctx, rdb, k, "0-0", 100000)
				if err != nil {
					t.Fatal(err)
				}
				want := perShard[s]
				if tc.outboxMax == 0 {
					want = nil
				} else if len(want) > tc.outboxMax {
					want = want[len(want)-tc.outboxMax:]
				}
				var got []notify.Alert
				for _, e := range entries {
					got = append(got, e.Alert)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("shard %d outbox:\n got %+v\nwant %+v", s, got, want)
				}
				dropped, _ := rdb.HGet(ctx, k.Meta, "dropped").Int()
				if wantDropped := max(0, len(perShard[s])-len(want)); tc.outboxMax > 0 && dropped != wantDropped {
					t.Errorf("shard %d dropped %d, want %d", s, dropped, wantDropped)
				}
				gotOpen := map[string]notify.Alert{}
				_, err = notify.OpenAlerts(ctx, rdb, k, 64, func(list []notify.Alert) error {
					for _, a := range list {
						gotOpen[a.ID] = a
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				wantOpen := open[s]
				if tc.outboxMax == 0 || len(wantOpen) == 0 {
					wantOpen = map[string]notify.Alert{}
				}
				if !reflect.DeepEqual(gotOpen, wantOpen) {
					t.Errorf("shard %d open alerts:\n got %+v\nwant %+v", s, gotOpen, wantOpen)
				}
			}
		})
	}
}

// Alerts that open and close within one batch are written closed.
func TestAlertOpenedAndClosedInOneBatch(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	entries := addEntries(t, rdb, keys, shiftEvents([]string{"dev-a"}, 240))
	changes := applyAll(t, rdb, keys, 1000, 0)
	var opens, closes int
	for _, c := range changes {
		if c.Change == alert.Opened {
			opens++
		} else {
			closes++
		}
	}
	if opens == 0 || opens != closes {
		t.Fatalf("test data: %d opened, %d closed in one batch; built for as many closed as opened", opens, closes)
	}
	want := alertsReference(t, entries)
	got, err := NewReader(rdb, keys, testShards, testWindow).Alerts(ctx, "", AlertsAll, 10)
	if err != nil || !reflect.DeepEqual(got, want) || len(got) != opens || got[0].Open {
		t.Fatalf("alerts %+v (%v), want %+v, closed", got, err, want)
	}
	s := shard.For("dev-a", testShards)
	if n := rdb.SCard(ctx, keys.OpenAlerts(s)).Val(); n != 0 {
		t.Errorf("%d open references, want none", n)
	}
	if v := rdb.HGet(ctx, keys.Stats(s), "alerts_open").Val(); v != "" && v != "0" {
		t.Errorf("alerts_open %q, want 0", v)
	}
}

// The history's bound: each device keeps its newest AlertHistory alerts,
// except that an alert still open keeps its record until it closes.
func TestAlertArgsBoundTheHistory(t *testing.T) {
	// Device d: rps alert 1 stays open while cpu alerts 2..6 open and
	// close; then alert 1 closes. Keep 3.
	st := state.NewDevice(5)
	st.AlertSeq = 6
	var changes []analysis.AlertChange
	change := func(c alert.Change, seq uint64, sig int, newest uint64) {
		changes = append(changes, analysis.AlertChange{Change: c, Newest: newest, Alert: state.Alert{DeviceID: "d", Seq: seq,
			Signal: state.SignalNames[sig], Open: c == alert.Opened, OpenedID: state.ID{Ms: seq}}})
	}
	change(alert.Opened, 1, state.SignalRPS, 1)
	for n := uint64(2); n <= 6; n++ {
		change(alert.Opened, n, state.SignalCPU, n)
		change(alert.Closed, n, state.SignalCPU, n)
	}
	change(alert.Closed, 1, state.SignalRPS, 6)
	res := analysis.Result{Updates: []*analysis.Update{{DeviceID: "d", State: st, Alerts: changes}}, Alerts: changes}
	args := appendAlertArgs(nil, res, 3)
	var drops []string
	for i := 0; i < len(args); i += 7 {
		drops = append(drops, fmt.Sprintf("%s %d:%d", args[i+2], args[i+1], args[i+5]))
	}
	want := []string{"open 1:0", "open 2:0", "closed 2:0", "open 3:0", "closed 3:0",
		"open 4:0",   // 4−3 = 1 is open: kept
		"closed 4:0", //
		"open 5:2", "closed 5:0", "open 6:3", "closed 6:0",
		"closed 1:1"} // 1 + 3 ≤ 6: beyond the history once closed
	if !slices.Equal(drops, want) {
		t.Errorf("changes (state number:drop)\n%q\nwant\n%q", drops, want)
	}
	// The same with alert 1 open since an earlier batch: it is open in the
	// final state... of a batch that does not close it.
	st.Signals[state.SignalRPS] = state.Signal{AlertSeq: 1}
	st.Signals[state.SignalRPS].Alert.Alert.Open = true
	later := changes[1 : len(changes)-1]
	res = analysis.Result{Updates: []*analysis.Update{{DeviceID: "d", State: st, Alerts: later}}, Alerts: later}
	args = appendAlertArgs(nil, res, 3)
	if drop := args[7*5+5]; drop != uint64(0) { // open 4 must not drop the open alert 1
		t.Errorf("opening 4 with alert 1 open since an earlier batch drops %v, want 0", drop)
	}
}

// On Redis: the device's hash keeps AlertHistory records (and an open
// one beyond them), the shard's list AlertHistory references.
func TestAlertHistoryOnRedis(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	s := shard.For("d", testShards)
	st := state.NewDevice(testWindow)
	var changes []analysis.AlertChange
	add := func(c alert.Change, seq uint64, sig int) {
		changes = append(changes, analysis.AlertChange{Change: c, Newest: st.AlertSeq, Alert: state.Alert{DeviceID: "d", Seq: seq,
			Signal: state.SignalNames[sig], Open: c == alert.Opened, OpenedID: state.ID{Ms: 1000 + seq}, Events: 1}})
	}
	st.AlertSeq = 1
	add(alert.Opened, 1, state.SignalRPS)
	for n := uint64(2); n <= AlertHistory+2; n++ {
		st.AlertSeq = n
		add(alert.Opened, n, state.SignalCPU)
		add(alert.Closed, n, state.SignalCPU)
	}
	st.Signals[state.SignalRPS] = state.Signal{AlertSeq: 1, OpenedID: state.ID{Ms: 1001}}
	st.Signals[state.SignalRPS].Alert.Alert = alert.Alert{Open: true, Events: 7}
	write := func(changes []analysis.AlertChange) {
		t.Helper()
		res := analysis.Result{Updates: []*analysis.Update{{DeviceID: "d", State: st, Alerts: changes}}, Alerts: changes}
		for _, c := range changes {
			if c.Change == alert.Opened {
				res.AlertsOpened++
			}
		}
		b := Batch{Lease: lease, Consumer: consumer, Detector: "classic", Window: testWindow, LeaseTTL: time.Minute,
			Recent: &state.Recent{Size: testWindow}, Result: res}
		if err := NewWriter(rdb, keys, s).Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	write(changes)
	hash := keys.DeviceAlerts(s, "d")
	if n := rdb.HLen(ctx, hash).Val(); n != AlertHistory+1 {
		t.Errorf("%d records, want %d: the newest %d and the open alert 1", n, AlertHistory+1, AlertHistory)
	}
	if rdb.HExists(ctx, hash, "2").Val() || !rdb.HExists(ctx, hash, "1").Val() || !rdb.HExists(ctx, hash, "3").Val() {
		t.Error("want record 2 trimmed, records 1 (open) and 3 kept")
	}
	if n := rdb.LLen(ctx, keys.Alerts(s)).Val(); n != AlertHistory {
		t.Errorf("shard list of %d references, want %d", n, AlertHistory)
	}
	if open := rdb.SMembers(ctx, keys.OpenAlerts(s)).Val(); !slices.Equal(open, []string{"1001-0 d:1"}) {
		t.Errorf("open set %q, want alert 1's reference", open)
	}
	// Alert 1 closes: its record goes, beyond the history.
	st.Signals[state.SignalRPS].Alert.Alert.Open = false
	closing := analysis.AlertChange{Change: alert.Closed, Newest: st.AlertSeq, Alert: state.Alert{DeviceID: "d", Seq: 1,
		Signal: "rps", OpenedID: state.ID{Ms: 1001}, ClosedAt: 5, Events: 9}}
	write([]analysis.AlertChange{closing})
	if n := rdb.HLen(ctx, hash).Val(); n != AlertHistory || rdb.HExists(ctx, hash, "1").Val() {
		t.Errorf("%d records (record 1 there: %v), want the newest %d", n, rdb.HExists(ctx, hash, "1").Val(), AlertHistory)
	}
	if n := rdb.SCard(ctx, keys.OpenAlerts(s)).Val(); n != 0 {
		t.Errorf("%d open references, want none", n)
	}
	vals := rdb.HMGet(ctx, keys.Stats(s), "alerts_opened", "alerts_open").Val()
	if vals[0] != fmt.Sprint(AlertHistory+2) || vals[1] != "0" {
		t.Errorf("alerts_opened, alerts_open = %v, want %d, 0", vals, AlertHistory+2)
	}
}

// Redis's own figure for a warm device (state in the shard's hash, id in
// its device set; anomaly and alert history apart): issue 9's budget is
// 4 KiB.
func TestWarmDeviceRedisMemory(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	const devices = 64
	// Warm: windows of 50, a day and more of values every 5 minutes (every
	// bucket of the daily profiles), alerts.
	det, _ := detector.New("robust", detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	a := analysis.NewApplier(det, analysis.DefaultParams(50))
	var entries []analysis.Entry
	ids := make([]string, devices)
	for k := range ids {
		ids[k] = fmt.Sprintf("warm-device-%04d", k)
	}
	var events []stream.Event
	for j := 0; j < 400; j++ {
		for k, id := range ids {
			rps := 100 + 10*math.Sin(float64(j+k)/7)
			if j >= 300 && j < 310 {
				rps += 400
			}
			events = append(events, stream.Event{DeviceID: id, CPU: 40 + float64((j+k)%5), RPS: rps, Timestamp: 1_700_000_000 + 300*float64(j)})
		}
	}
	for i, e := range events {
		m := map[string]any{}
		vals := e.Values()
		for j := 0; j < len(vals); j += 2 {
			m[vals[j]] = vals[j+1]
		}
		entries = append(entries, analysis.Entry{ID: fmt.Sprintf("%d-0", i+1), Values: m})
	}
	states := map[string]*state.Device{}
	res := a.Apply(analysis.Decode(entries), states, nil)
	if res.AlertsOpened == 0 || states[ids[0]].Signals[state.SignalRPS].Score.Seen != 1<<48-1 {
		t.Fatalf("test data: %d alerts; the devices must be warm", res.AlertsOpened)
	}
	// Only the states and the device set, written by the script.
	for _, u := range res.Updates {
		u.Anomalies, u.Alerts = nil, nil
	}
	res.Anomalies, res.Alerts = nil, nil
	s := 0
	b := Batch{Lease: lease, Consumer: consumer, Detector: "robust", Window: 50, LeaseTTL: time.Minute,
		Recent: &state.Recent{Size: 50}, Result: res}
	if err := NewWriter(rdb, keys, s).Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, key := range []string{keys.DeviceStates(s), keys.Devices(s)} {
		n, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	per := total / devices
	size := len(states[ids[0]].AppendBinary(nil))
	t.Logf("Redis per warm device: %d bytes (state %d bytes encoded; MEMORY USAGE of the states hash and device set over %d devices)", per, size, devices)
	if per > 4096 {
		t.Errorf("Redis holds %d bytes per warm device, over the 4 KiB budget", per)
	}
}
