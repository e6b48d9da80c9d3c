package results

import (
	"bufio"
	"context"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

func decodedOf(events ...stream.Event) analysis.Decoded {
	entries := make([]analysis.Entry, len(events))
	for i, e := range events {
		vals := e.Values()
		m := map[string]any{}
		for j := 0; j < len(vals); j += 2 {
			m[vals[j]] = vals[j+1]
		}
		entries[i] = analysis.Entry{ID: "1-" + string(rune('0'+i)), Values: m}
	}
	return analysis.Decode(entries)
}

// The fleet tracks at most max names, tag keys and values per key, first
// come first served, whichever analyzer asks.
func TestRegistryBoundsTheFleet(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	named := func(names ...string) stream.Event {
		e := stream.Event{DeviceID: "d", NoCPU: true, NoRPS: true}
		for _, n := range names {
			e.Metrics = append(e.Metrics, metric.Named{Name: n, Value: 1})
		}
		return e
	}
	first, second := NewRegistry(rdb, keys, 2), NewRegistry(rdb, keys, 2)
	if err := first.Prepare(ctx, decodedOf(named("a", "b"), named("c"))); err != nil {
		t.Fatal(err)
	}
	if err := second.Prepare(ctx, decodedOf(named("c", "a"))); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Registry{first, second} {
		if !r.TrackSignal("a") || r.TrackSignal("c") {
			t.Errorf("tracks a %v, c %v; want a only (b too for the first)", r.TrackSignal("a"), r.TrackSignal("c"))
		}
	}
	if !first.TrackSignal("b") {
		t.Error("first registry does not track b")
	}
	tagged := func(tags ...metric.Tag) stream.Event {
		e := named("a")
		e.Tags = tags
		return e
	}
	err := first.Prepare(ctx, decodedOf(tagged(metric.Tag{Key: "site", Value: "x"}, metric.Tag{Key: "model", Value: "m"}),
		tagged(metric.Tag{Key: "site", Value: "y"}, metric.Tag{Key: "rack", Value: "r"}), tagged(metric.Tag{Key: "site", Value: "z"})))
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[[2]string]bool{{"site", "x"}: true, {"model", "m"}: true, {"site", "y"}: true,
		{"rack", "r"}: false, {"site", "z"}: false} {
		if got := first.TrackTag(tag[0], tag[1]); got != want {
			t.Errorf("TrackTag(%s=%s) = %v, want %v", tag[0], tag[1], got, want)
		}
	}
	names, err := NewReader(rdb, keys, testShards, testWindow).SignalNames(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{"a", "b", "cpu", "rps"}) {
		t.Errorf("SignalNames = %v, %v", names, err)
	}
}

// A device's tags move it between the shard's tag sets, in the batch's
// write.
func TestTagSetsFollowTheLatestTags(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	s := shard.For("th-1", testShards)
	w := NewWriter(rdb, keys, s)
	at := func(site string) stream.Event {
		return stream.Event{DeviceID: "th-1", NoCPU: true, NoRPS: true, Timestamp: 1.7e9,
			Metrics: []metric.Named{{Name: "temperature", Value: 20}}, Tags: []metric.Tag{{Key: "site", Value: site}}}
	}
	r := NewReader(rdb, keys, testShards, testWindow)
	for _, step := range []struct {
		site          string
		berlin, paris []string
	}{{"berlin", []string{"th-1"}, nil}, {"paris", nil, []string{"th-1"}}, {"paris", nil, []string{"th-1"}}} {
		addEvents(t, rdb, keys, []stream.Event{at(step.site)})
		if err := applyShard(t, rdb, keys, s, w, Batch{Lease: lease, Consumer: consumer, Window: testWindow, LeaseTTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		for site, want := range map[string][]string{"berlin": step.berlin, "paris": step.paris} {
			got, err := r.Tagged(ctx, "site", site)
			if err != nil || !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
				t.Errorf("after %s: tagged site=%s = %v (%v), want %v", step.site, site, got, err, want)
			}
		}
	}
	if n := rdb.Exists(ctx, keys.TagMembers(s, "site", "berlin")).Val(); n != 0 {
		t.Error("the emptied tag set is still there")
	}
}

// Data written by the previous release — a device state of version 2, an
// anomaly record of version 2, an entry of five fields — is read and
// carried on after the upgrade.
func TestDataOfThePreviousReleaseCarriesOn(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	f, err := os.Open("../state/testdata/v2-records.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fix := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kind, h, _ := strings.Cut(sc.Text(), " ")
		if fix[kind], err = hex.DecodeString(h); err != nil {
			t.Fatal(err)
		}
	}
	const id = "sensor-1" // the fixture anomaly's device
	s := shard.For(id, testShards)
	old, err := state.DecodeDevice(fix["DEV"], testWindow)
	if err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, keys.DeviceStates(s), id, fix["DEV"])
	rdb.ZAdd(ctx, keys.Devices(s), redis.Z{Member: id})
	rdb.LPush(ctx, keys.DeviceAnomalies(s, id), fix["ANOM"])
	// An entry as the previous ingest wrote it: five fields.
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(s),
		Values: []string{"d", id, "c", "40", "r", "100", "t", "1800000000", "rt", "1800000000000000000"}})
	addEvents(t, rdb, keys, []stream.Event{{DeviceID: id, CPU: 41, RPS: 101, Timestamp: 1.8e9 + 60,
		Metrics: []metric.Named{{Name: "temperature", Value: 20}}}})
	w := NewWriter(rdb, keys, s)
	if err := applyShard(t, rdb, keys, s, w, Batch{Lease: lease, Consumer: consumer, Window: testWindow, LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(rdb, keys, testShards, testWindow)
	d, err := r.Device(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Total != old.Total+2 || d.AlertSeq != old.AlertSeq || d.Last.RPS != 101 || len(d.Named) != 1 {
		t.Fatalf("after the upgrade: total %d (was %d), alerts %d (was %d), last rps %v, named %d",
			d.Total, old.Total, d.AlertSeq, old.AlertSeq, d.Last.RPS, len(d.Named))
	}
	if got, want := d.RPS.AppendValues(nil), append(old.RPS.AppendValues(nil)[2:], 100, 101); !reflect.DeepEqual(got, want) {
		t.Fatalf("rps window %v, want %v: the old window carried on", got, want)
	}
	list, err := r.Anomalies(ctx, id, 100)
	if err != nil || len(list) == 0 || list[len(list)-1].Signal != "cpu" || list[len(list)-1].StreamID != "1700000000123-4" {
		t.Fatalf("anomalies after the upgrade %+v, %v: the old record must still read", list, err)
	}
}

// Alerts queued for Alertmanager carry their device's tags (as labels
// there); GET /alerts' records do not.
func TestOutboxAlertsCarryTheDeviceTags(t *testing.T) {
	rdb, keys := setup(t)
	ctx := context.Background()
	events := shiftEvents([]string{"dev-a"}, 490)
	events[0].Tags = []metric.Tag{{Key: "site", Value: "berlin"}, {Key: "model", Value: "x1"}}
	addEntries(t, rdb, keys, events)
	changes := applyAll(t, rdb, keys, 97, 100000)
	if len(changes) == 0 {
		t.Fatal("test data: no alert")
	}
	entries, err := notify.Peek(ctx, rdb, notify.KeysFor(keys.Prefix, shard.For("dev-a", testShards)), "0-0", 100000)
	if err != nil || len(entries) != len(changes) {
		t.Fatalf("outbox: %d entries (%v), want %d", len(entries), err, len(changes))
	}
	for _, e := range entries {
		if want := map[string]string{"model": "x1", "site": "berlin"}; !reflect.DeepEqual(e.Alert.Tags, want) {
			t.Fatalf("queued alert's tags %v, want %v", e.Alert.Tags, want)
		}
	}
	list, err := NewReader(rdb, keys, testShards, testWindow).Alerts(ctx, "dev-a", AlertsAll, 1)
	if err != nil || len(list) != 1 || AlertRecord(list[0]).Tags != nil {
		t.Fatalf("GET /alerts record %+v (%v): no tags there", list, err)
	}
}
