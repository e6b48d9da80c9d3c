package results

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// ErrNotFound is returned for a device no analyzer has seen.
var ErrNotFound = errors.New("not found")

// Reader reads what the analyzers wrote.
type Reader struct {
	rdb    redis.UniversalClient
	keys   shard.Keys
	shards int
	window int
}

// NewReader returns a reader of the results under keys, over shards
// shards with windows of window values.
func NewReader(rdb redis.UniversalClient, keys shard.Keys, shards, window int) *Reader {
	return &Reader{rdb: rdb, keys: keys, shards: shards, window: window}
}

// Fleet is the whole fleet's summary.
type Fleet struct {
	Values    []float64 // rps of the newest window events, oldest first
	Processed int64
	Anomalies int64
	Devices   int64
	// AlertsOpen is how many device alerts are open, AlertsOpened how
	// many ever opened (the shards' counters).
	AlertsOpen   int64
	AlertsOpened int64
	// Lag and Pending are summed over the shards whose figures Redis can
	// tell; LagUnknown lists the others, whose backlog nobody knows: a
	// stream without the analyzers' consumer group (Redis lost it and no
	// analyzer has created it again: nothing reads that stream), a key
	// that is not a stream, or a lag Redis cannot compute (after entries
	// were deleted). A shard whose stream does not exist holds nothing to
	// analyze: lag 0.
	Lag            int64
	Pending        int64
	LagUnknown     []int
	PendingUnknown []int
	Detectors      []string
}

// Fleet reads every shard's counters, recent values and backlog: rps's
// view, the fleet's.
func (s *Reader) Fleet(ctx context.Context) (Fleet, error) {
	f, _, err := s.view(ctx, "fleet", viewFields{processed: "processed", anomalies: "anomalies", recent: "recent",
		alertsOpen: "alerts_open", alertsOpened: "alerts_opened"})
	return f, err
}

// viewFields name the fields of one view in the shards' stats hashes;
// devices "" counts the shard's device set instead, alertsOpened ""
// leaves AlertsOpened 0.
type viewFields struct{ processed, anomalies, recent, alertsOpen, alertsOpened, devices string }

// view reads one view of every shard's stats and backlog; seen reports
// whether some shard has the view's processed field.
func (s *Reader) view(ctx context.Context, what string, fields viewFields) (f Fleet, seen bool, err error) {
	pipe := s.rdb.Pipeline()
	stats := make([]*redis.SliceCmd, s.shards)
	devices := make([]*redis.IntCmd, s.shards)
	groups := make([]*redis.XInfoGroupsCmd, s.shards)
	names := []string{fields.processed, fields.anomalies, fields.recent, "detector", fields.alertsOpen}
	if fields.alertsOpened != "" {
		names = append(names, fields.alertsOpened)
	}
	if fields.devices != "" {
		names = append(names, fields.devices)
	}
	for i := 0; i < s.shards; i++ {
		stats[i] = pipe.HMGet(ctx, s.keys.Stats(i), names...)
		if fields.devices == "" {
			devices[i] = pipe.ZCard(ctx, s.keys.Devices(i))
		}
		groups[i] = pipe.XInfoGroups(ctx, s.keys.Stream(i))
	}
	pipe.Exec(ctx) // errors checked per command: XINFO fails on a stream not yet created
	var ids []state.ID
	var vals []float64
	detectors := map[string]bool{}
	for i := 0; i < s.shards; i++ {
		v, err := stats[i].Result()
		if err != nil {
			return Fleet{}, false, fmt.Errorf("read %s stats: %w", what, err)
		}
		_, ok := v[0].(string)
		seen = seen || ok
		f.Processed += atoi(v[0])
		f.Anomalies += atoi(v[1])
		// Alerts open before a counter existed close without having been
		// counted: a shard never reports fewer than none.
		f.AlertsOpen += max(atoi(v[4]), 0)
		if raw, ok := v[2].(string); ok {
			r, err := state.DecodeRecent([]byte(raw), s.window)
			if err != nil {
				return Fleet{}, false, fmt.Errorf("shard %d: %w", i, err)
			}
			ids = append(ids, r.IDs...)
			vals = append(vals, r.RPS...)
		}
		if d, ok := v[3].(string); ok && !detectors[d] {
			detectors[d] = true
			f.Detectors = append(f.Detectors, d)
		}
		if fields.alertsOpened != "" {
			f.AlertsOpened += atoi(v[5])
		}
		if fields.devices == "" {
			f.Devices += devices[i].Val()
		} else {
			f.Devices += atoi(v[len(v)-1])
		}
		f.addBacklog(i, groups[i])
	}
	sort.Strings(f.Detectors)
	// The view's window: the newest values across shards.
	if len(ids) > 0 {
		f.Values = newest(ids, vals, s.window)
	}
	return f, seen, nil
}

// addBacklog adds shard i's lag and pending count, or lists it as unknown.
func (f *Fleet) addBacklog(i int, groups *redis.XInfoGroupsCmd) {
	lag, pending, lagKnown, pendingKnown := shardBacklog(groups)
	if lagKnown {
		f.Lag += lag
	} else {
		f.LagUnknown = append(f.LagUnknown, i)
	}
	if pendingKnown {
		f.Pending += pending
	} else {
		f.PendingUnknown = append(f.PendingUnknown, i)
	}
}

// newest returns the newest n values by stream id (Redis's clock at
// ingest) across shards, oldest first.
func newest(ids []state.ID, vals []float64, n int) []float64 {
	idx := make([]int, len(ids))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ids[idx[a]].Less(ids[idx[b]]) })
	if len(idx) > n {
		idx = idx[len(idx)-n:]
	}
	out := make([]float64, 0, len(idx))
	for _, i := range idx {
		out = append(out, vals[i])
	}
	return out
}

// shardBacklog reads a shard's lag and pending count from its XINFO
// GROUPS, and whether each is known.
func shardBacklog(cmd *redis.XInfoGroupsCmd) (lag, pending int64, lagKnown, pendingKnown bool) {
	groups, err := cmd.Result()
	if err != nil {
		// No stream: nothing waits to be analyzed.
		noStream := strings.Contains(err.Error(), "no such key")
		return 0, 0, noStream, noStream
	}
	for _, g := range groups {
		if g.Name == shard.Group {
			return max(g.Lag, 0), g.Pending, g.Lag >= 0, true
		}
	}
	return 0, 0, false, false
}

// Device reads one device's state; ErrNotFound for a device never seen.
func (s *Reader) Device(ctx context.Context, id string) (*state.Device, error) {
	key := s.keys.DeviceStates(shard.For(id, s.shards))
	raw, err := s.rdb.HGet(ctx, key, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("hget %s %s: %w", key, id, err)
	}
	d, err := state.DecodeDevice(raw, s.window)
	if err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", key, id, err)
	}
	return d, nil
}

// Anomalies reads the newest anomalies, first the newest: of one device
// (ErrNotFound for a device never seen) or, with deviceID "", of the fleet.
func (s *Reader) Anomalies(ctx context.Context, deviceID string, limit int) ([]state.Anomaly, error) {
	if deviceID != "" {
		sh := shard.For(deviceID, s.shards)
		pipe := s.rdb.Pipeline()
		exists := pipe.HExists(ctx, s.keys.DeviceStates(sh), deviceID)
		list := pipe.LRange(ctx, s.keys.DeviceAnomalies(sh, deviceID), 0, int64(limit-1))
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("read anomalies of %s: %w", deviceID, err)
		}
		if !exists.Val() {
			return nil, ErrNotFound
		}
		return decodeAnomalies(list.Val())
	}
	pipe := s.rdb.Pipeline()
	lists := make([]*redis.StringSliceCmd, s.shards)
	for i := range lists {
		lists[i] = pipe.LRange(ctx, s.keys.Anomalies(i), 0, int64(limit-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read fleet anomalies: %w", err)
	}
	return newestAnomalies(lists, limit)
}

// newestAnomalies merges lists of anomaly records, each newest first,
// into the newest limit, newest first, by stream id.
func newestAnomalies(lists []*redis.StringSliceCmd, limit int) ([]state.Anomaly, error) {
	var all []state.Anomaly
	var ids []state.ID
	for _, l := range lists {
		list, err := decodeAnomalies(l.Val())
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			id, err := state.ParseID(a.StreamID)
			if err != nil {
				return nil, fmt.Errorf("decode anomaly: %w", err)
			}
			all, ids = append(all, a), append(ids, id)
		}
	}
	idx := make([]int, len(all))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return ids[idx[b]].Less(ids[idx[a]]) }) // newest first
	if len(idx) > limit {
		idx = idx[:limit]
	}
	out := make([]state.Anomaly, len(idx))
	for i, j := range idx {
		out[i] = all[j]
	}
	return out, nil
}

func decodeAnomalies(raws []string) ([]state.Anomaly, error) {
	out := make([]state.Anomaly, len(raws))
	for i, raw := range raws {
		a, err := state.DecodeAnomaly([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("decode anomaly: %w", err)
		}
		out[i] = a
	}
	return out, nil
}

// DeviceSummary is one row of /devices.
type DeviceSummary struct {
	DeviceID       string  `json:"device_id"`
	LastSeen       float64 `json:"last_seen"`
	TotalProcessed uint64  `json:"total_processed"`
	AnomalyCount   uint64  `json:"anomaly_count"`
}

// Devices lists devices in id order after cursor; next is the cursor of
// the following page, "" on the last.
func (s *Reader) Devices(ctx context.Context, cursor string, limit int) ([]DeviceSummary, string, error) {
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	pipe := s.rdb.Pipeline()
	pages := make([]*redis.StringSliceCmd, s.shards)
	for i := range pages {
		pages[i] = pipe.ZRangeByLex(ctx, s.keys.Devices(i), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit + 1)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	var ids []string
	for _, p := range pages {
		ids = append(ids, p.Val()...)
	}
	sort.Strings(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out, err := s.summaries(ctx, ids)
	return out, next, err
}

// summaries reads the rows of devices ids, in order; a device listed but
// whose state is gone is skipped rather than failing the page.
func (s *Reader) summaries(ctx context.Context, ids []string) ([]DeviceSummary, error) {
	states, err := s.states(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceSummary, 0, len(ids))
	for i, d := range states {
		if d != nil {
			out = append(out, DeviceSummary{DeviceID: ids[i], LastSeen: d.LastSeen, TotalProcessed: d.Total, AnomalyCount: d.Anomalies})
		}
	}
	return out, nil
}

func atoi(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
