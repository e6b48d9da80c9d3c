package notify

import (
	"context"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/redis/go-redis/v9"
)

var redisSrv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisSrv)) }

// testKeys returns keys of shard 7 under a prefix of the test's own.
func testKeys(t *testing.T) (*redis.Client, Keys) {
	t.Helper()
	rdb := redisSrv.Client()
	t.Cleanup(func() { rdb.Close() })
	return rdb, KeysFor(redisSrv.Prefix(t), 7)
}

func alertOf(id, device, state string) Alert {
	a := Alert{ID: id, DeviceID: device, Signal: "rps", State: state, OpenedAt: float64(time.Now().Unix()),
		Score: 0.995, ZScore: 6, Value: 300, Expected: Band{90, 110}, Events: 1}
	if state == StateClosed {
		c := a.OpenedAt + 5
		a.ClosedAt, a.Events = &c, 7
	}
	return a
}

func ids(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Alert.ID+"/"+e.Alert.State)
	}
	return out
}

// peek returns the first 10 entries of the outbox of keys.
func peek(t *testing.T, rdb *redis.Client, keys Keys) []Entry {
	t.Helper()
	entries, err := Peek(context.Background(), rdb, keys, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestKeys(t *testing.T) {
	k := KeysFor("pulse", 7)
	want := Keys{"pulse:alert-outbox:{7}", "pulse:alert-open:{7}", "pulse:alert-meta:{7}"}
	if k != want {
		t.Errorf("KeysFor = %+v, want %+v", k, want)
	}
	tests := []struct {
		keys Keys
		ok   bool
	}{
		{k, true},
		{Keys{"o:{x}", "{x}:h", "a{x}m"}, true},
		{Keys{"o", "h", "m"}, false}, // three slots on a cluster
		{Keys{"o:{1}", "h:{1}", "m:{2}"}, false},
		{Keys{"o:{1}", "h", "m"}, false},
		{Keys{"o", "o", "m"}, false},
		{Keys{"o", "", "m"}, false},
		{Keys{"o:{}", "h:{}", "m:{}"}, false}, // an empty tag hashes the whole key: three slots
	}
	for _, tt := range tests {
		if err := tt.keys.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok %v", tt.keys, err, tt.ok)
		}
	}
}

// The documented layout: a stream of records in order, a hash of the open
// alerts, and the bound counted in meta.
func TestEnqueueLayout(t *testing.T) {
	ctx := context.Background()
	rdb, keys := testKeys(t)
	before := time.Now().Add(-time.Second)
	if _, err := Enqueue(ctx, rdb, keys, 100, alertOf("A", "d1", StateOpen), alertOf("B", "d2", StateOpen)); err != nil {
		t.Fatal(err)
	}
	if _, err := Enqueue(ctx, rdb, keys, 100, alertOf("A", "d1", StateClosed)); err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(ctx, keys.Outbox, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("outbox holds %d entries, want 3", len(msgs))
	}
	for i, want := range []Alert{alertOf("A", "d1", StateOpen), alertOf("B", "d2", StateOpen), alertOf("A", "d1", StateClosed)} {
		rec, _ := Record(want)
		if len(msgs[i].Values) != 1 || msgs[i].Values["a"] != string(rec) {
			t.Errorf("entry %d = %v, want {a: %s}", i, msgs[i].Values, rec)
		}
	}
	open, err := rdb.HGetAll(ctx, keys.Open).Result()
	if err != nil {
		t.Fatal(err)
	}
	recB, _ := Record(alertOf("B", "d2", StateOpen))
	if !reflect.DeepEqual(open, map[string]string{"B": string(recB)}) {
		t.Errorf("open hash = %v, want only B", open)
	}
	entries := peek(t, rdb, keys)
	if got := ids(entries); !reflect.DeepEqual(got, []string{"A/open", "B/open", "A/closed"}) {
		t.Errorf("Peek = %v", got)
	}
	for _, e := range entries {
		if e.Queued.Before(before) || e.Queued.After(time.Now().Add(time.Second)) || e.Err != nil {
			t.Errorf("entry %s: queued %v, err %v", e.ID, e.Queued, e.Err)
		}
	}
	rest, err := Peek(ctx, rdb, keys, entries[0].ID, 10)
	if err != nil || !reflect.DeepEqual(ids(rest), []string{"B/open", "A/closed"}) {
		t.Errorf("Peek after the first = %v, %v", ids(rest), err)
	}
}

// maxlen 0 is delivery off: the batch script may call the function
// unconditionally.
func TestEnqueueOff(t *testing.T) {
	ctx := context.Background()
	rdb, keys := testKeys(t)
	if _, err := Enqueue(ctx, rdb, keys, 0, alertOf("A", "d1", StateOpen)); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, keys.Outbox, keys.Open, keys.Meta).Result(); err != nil || n != 0 {
		t.Errorf("%d keys written with delivery off (%v)", n, err)
	}
}

// The bound keeps the newest entries and counts the rest once.
func TestOutboxBound(t *testing.T) {
	ctx := context.Background()
	rdb, keys := testKeys(t)
	var dropped int64
	for i := 0; i < 5; i++ {
		n, err := Enqueue(ctx, rdb, keys, 3, alertOf("A"+strconv.Itoa(i), "d"+strconv.Itoa(i), StateOpen))
		if err != nil {
			t.Fatal(err)
		}
		dropped += n
	}
	if dropped != 2 {
		t.Errorf("Enqueue reported %d dropped, want 2", dropped)
	}
	entries := peek(t, rdb, keys)
	if got := ids(entries); !reflect.DeepEqual(got, []string{"A2/open", "A3/open", "A4/open"}) {
		t.Errorf("outbox = %v, want the newest 3", got)
	}
	for _, want := range [][2]int64{{2, 3}, {0, 3}} {
		d, size, err := TakeStats(ctx, rdb, keys)
		if err != nil || d != want[0] || size != want[1] {
			t.Errorf("TakeStats = %d dropped, size %d, %v; want %v", d, size, err, want)
		}
	}
}

// An entry leaves the outbox once every configured Alertmanager accepted
// it, not before; cursors never move back.
func TestAck(t *testing.T) {
	ctx := context.Background()
	rdb, keys := testKeys(t)
	for i := 0; i < 4; i++ {
		if _, err := Enqueue(ctx, rdb, keys, 100, alertOf("A"+strconv.Itoa(i), "d", StateOpen)); err != nil {
			t.Fatal(err)
		}
	}
	entries := peek(t, rdb, keys)
	names := []string{"http://am-0:9093", "http://am-1:9093"}
	steps := []struct {
		target   string
		upTo     int // index of the entry acknowledged
		wantLeft []string
	}{
		{names[0], 1, []string{"A0/open", "A1/open", "A2/open", "A3/open"}}, // am-1 has accepted nothing
		{names[1], 0, []string{"A1/open", "A2/open", "A3/open"}},
		{names[1], 3, []string{"A2/open", "A3/open"}}, // am-0 is at A1
		{names[0], 0, []string{"A2/open", "A3/open"}}, // backwards: ignored
		{names[0], 3, nil},
	}
	for i, s := range steps {
		size, err := Ack(ctx, rdb, keys, s.target, entries[s.upTo].ID, names)
		if err != nil {
			t.Fatal(err)
		}
		left := peek(t, rdb, keys)
		if got := ids(left); !reflect.DeepEqual(got, s.wantLeft) || size != int64(len(s.wantLeft)) {
			t.Errorf("step %d (%s acks %d): outbox %v (size %d), want %v", i, s.target, s.upTo, got, size, s.wantLeft)
		}
	}
	for _, n := range names {
		if c, err := Cursor(ctx, rdb, keys, n); err != nil || c != entries[3].ID {
			t.Errorf("cursor of %s = %q, %v; want %s", n, c, err, entries[3].ID)
		}
	}
}

func TestOpenAlerts(t *testing.T) {
	ctx := context.Background()
	rdb, keys := testKeys(t)
	var batch []Alert
	for i := 0; i < 300; i++ { // more than a listpack holds: HSCAN pages
		batch = append(batch, alertOf("A"+strconv.Itoa(i), "d"+strconv.Itoa(i), StateOpen))
	}
	batch = append(batch, alertOf("A7", "d7", StateClosed))
	if _, err := Enqueue(ctx, rdb, keys, 1000, batch...); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, keys.Open, "junk", "{not json")
	seen := map[string]int{}
	bad, err := OpenAlerts(ctx, rdb, keys, 64, func(alerts []Alert) error {
		if len(alerts) > 64 {
			t.Errorf("a chunk of %d alerts, more than 64", len(alerts))
		}
		for _, a := range alerts {
			seen[a.ID]++
		}
		return nil
	})
	if err != nil || bad != 1 {
		t.Errorf("OpenAlerts: %d bad, %v; want 1 bad", bad, err)
	}
	if len(seen) != 299 || seen["A7"] != 0 {
		t.Errorf("saw %d open alerts (A7: %d), want 299 without A7", len(seen), seen["A7"])
	}
}

// The keys of one shard share a slot: every script runs on Redis Cluster.
func TestOutboxOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c, err := redistest.StartCluster(3, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	rdb := c.Client()
	defer rdb.Close()
	ctx := context.Background()
	for shard := 0; shard < 3; shard++ {
		keys := KeysFor("pulse", shard)
		if _, err := Enqueue(ctx, rdb, keys, 2, alertOf("A", "d", StateOpen), alertOf("B", "d", StateOpen), alertOf("A", "d", StateClosed)); err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		entries, err := Peek(ctx, rdb, keys, "", 10)
		if err != nil || len(entries) != 2 {
			t.Fatalf("shard %d: Peek = %v, %v", shard, ids(entries), err)
		}
		if size, err := Ack(ctx, rdb, keys, "am", entries[1].ID, []string{"am"}); err != nil || size != 0 {
			t.Errorf("shard %d: Ack = %d, %v", shard, size, err)
		}
		if d, _, err := TakeStats(ctx, rdb, keys); err != nil || d != 1 {
			t.Errorf("shard %d: TakeStats = %d dropped, %v", shard, d, err)
		}
		var open []string
		if _, err := OpenAlerts(ctx, rdb, keys, 10, func(as []Alert) error {
			for _, a := range as {
				open = append(open, a.ID)
			}
			return nil
		}); err != nil || !reflect.DeepEqual(open, []string{"B"}) {
			t.Errorf("shard %d: open %v, %v", shard, open, err)
		}
	}
}
