package results

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

var srv *redistest.Server

func TestMain(m *testing.M) {
	os.Exit(func() int {
		s, err := redistest.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "start redis:", err)
			return 1
		}
		defer s.Stop()
		srv = s
		return m.Run()
	}())
}

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

// applyShard reads every entry of shard s as consumer and writes its
// results with w, the way an analyzer does.
func applyShard(t *testing.T, rdb redis.UniversalClient, keys shard.Keys, s int, w *Writer, b Batch) error {
	t.Helper()
	ctx := context.Background()
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: shard.Group, Consumer: b.Consumer,
		Streams: []string{keys.Stream(s), ">"}, Count: 1000, Block: -1}).Result()
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
	det, _ := detector.New("classic", detector.Params{WindowSize: testWindow, MinSamples: 2, Threshold: 1.5})
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
	b.Result = analysis.NewApplier(det, testWindow).Apply(d, states, recent)
	return w.Write(ctx, b)
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
	w := NewWriter(nil, shard.Keys{Prefix: "p"}, 0)
	_, args := w.writeArgs(Batch{Lease: "L", Consumer: "C", Detector: "D", Window: 7, LeaseTTL: 3 * time.Second,
		Recent: &state.Recent{Size: 7}, Result: analysis.Result{Processed: 5, AnomalousEvents: 2}})
	if len(args) != len(header) {
		t.Fatalf("an empty batch has %d arguments, want the %d of the header", len(args), len(header))
	}
	at := func(name string) any { return args[indexOf(header, name)] }
	if at("lease") != "L" || at("group") != shard.Group || at("consumer") != "C" || at("detector") != "D" ||
		at("processed") != 5 || at("anomalous") != 2 || at("keep") != AnomalyHistory || at("window") != 7 || at("ttl") != int64(3000) {
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
