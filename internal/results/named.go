package results

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// ErrUnknownSignal is returned for a signal no device has sent.
var ErrUnknownSignal = errors.New("unknown signal")

// SignalFleet reads the fleet's view of signal name other than rps (whose
// view is Fleet): the shards' counters and recent values of the signal
// (processed:<name>, anomalies:<name>, devices:<name>, recent:<name>,
// alerts_open:<name>) and their backlog. Anomalies counts the signal's
// anomalous values, Devices the devices that sent it, AlertsOpen its
// open alerts. ErrUnknownSignal when no shard has counted a value of it.
func (s *Reader) SignalFleet(ctx context.Context, name string) (Fleet, error) {
	f, seen, err := s.view(ctx, "signal "+name, viewFields{processed: "processed:" + name, anomalies: "anomalies:" + name,
		recent: "recent:" + name, alertsOpen: "alerts_open:" + name, devices: "devices:" + name})
	if err == nil && !seen {
		return Fleet{}, ErrUnknownSignal
	}
	return f, err
}

// SignalNames returns the names of the signals the fleet tracks, rps and
// cpu included, sorted.
func (s *Reader) SignalNames(ctx context.Context) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, s.keys.Signals()).Result()
	if err != nil {
		return nil, fmt.Errorf("smembers %s: %w", s.keys.Signals(), err)
	}
	names = append(names, state.SignalNames[:]...)
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Tags returns the tag keys the fleet tracks and each one's values,
// sorted.
func (s *Reader) Tags(ctx context.Context) (map[string][]string, error) {
	keys, err := s.rdb.SMembers(ctx, s.keys.TagKeys()).Result()
	if err != nil {
		return nil, fmt.Errorf("smembers %s: %w", s.keys.TagKeys(), err)
	}
	out := make(map[string][]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.SMembers(ctx, s.keys.TagValues(k))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read tag values: %w", err)
	}
	for i, k := range keys {
		vals := cmds[i].Val()
		slices.Sort(vals)
		out[k] = vals
	}
	return out, nil
}

// Tagged returns the ids of the devices tagged key=value, sorted.
func (s *Reader) Tagged(ctx context.Context, key, value string) ([]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, s.shards)
	for i := range cmds {
		cmds[i] = pipe.SMembers(ctx, s.keys.TagMembers(i, key, value))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read devices tagged %s=%s: %w", key, value, err)
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	slices.Sort(ids)
	return ids, nil
}

// Group is the summary of the devices of one tag.
type Group struct {
	Devices    int64
	Processed  uint64
	Anomalies  uint64
	OpenAlerts int64
}

// Group reads the summary of the devices tagged key=value.
func (s *Reader) Group(ctx context.Context, key, value string) (Group, error) {
	ids, err := s.Tagged(ctx, key, value)
	if err != nil {
		return Group{}, err
	}
	states, err := s.states(ctx, ids)
	if err != nil {
		return Group{}, err
	}
	var g Group
	for i, d := range states {
		if d == nil {
			continue // its state is gone
		}
		g.Devices++
		g.Processed += d.Total
		g.Anomalies += d.Anomalies
		g.OpenAlerts += int64(len(d.OpenAlerts(ids[i])))
	}
	return g, nil
}

// states reads the states of ids, in order; nil for a device whose state
// is gone.
func (s *Reader) states(ctx context.Context, ids []string) ([]*state.Device, error) {
	out := make([]*state.Device, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.HGet(ctx, s.keys.DeviceStates(shard.For(id, s.shards)), id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read device states: %w", err)
	}
	for i, id := range ids {
		raw, err := gets[i].Bytes()
		if err != nil {
			continue
		}
		d, err := state.DecodeDevice(raw, s.window)
		if err != nil {
			return nil, fmt.Errorf("decode device %s: %w", id, err)
		}
		out[i] = d
	}
	return out, nil
}

// TaggedDevices lists the devices tagged key=value in id order after
// cursor, as Devices lists all.
func (s *Reader) TaggedDevices(ctx context.Context, key, value, cursor string, limit int) ([]DeviceSummary, string, error) {
	ids, err := s.Tagged(ctx, key, value)
	if err != nil {
		return nil, "", err
	}
	start, _ := slices.BinarySearch(ids, cursor)
	if start < len(ids) && ids[start] == cursor {
		start++
	}
	ids = ids[start:]
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out, err := s.summaries(ctx, ids)
	return out, next, err
}

// TaggedAnomalies reads the newest anomalies of the devices tagged
// key=value, newest first: each device's newest limit, merged.
func (s *Reader) TaggedAnomalies(ctx context.Context, key, value string, limit int) ([]state.Anomaly, error) {
	ids, err := s.Tagged(ctx, key, value)
	if err != nil || len(ids) == 0 {
		return []state.Anomaly{}, err
	}
	pipe := s.rdb.Pipeline()
	lists := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		lists[i] = pipe.LRange(ctx, s.keys.DeviceAnomalies(shard.For(id, s.shards), id), 0, int64(limit-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read anomalies tagged %s=%s: %w", key, value, err)
	}
	return newestAnomalies(lists, limit)
}

// TaggedAlerts reads up to limit alerts in state which of the devices
// tagged key=value, newest first, as Alerts reads one device's.
func (s *Reader) TaggedAlerts(ctx context.Context, key, value, which string, limit int) ([]state.Alert, error) {
	if which != AlertsAll && which != AlertsOpen && which != AlertsClosed {
		return nil, ErrBadAlertState
	}
	ids, err := s.Tagged(ctx, key, value)
	if err != nil {
		return nil, err
	}
	out := []state.Alert{}
	for _, id := range ids {
		list, err := s.deviceAlerts(ctx, id, which, limit)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	slices.SortFunc(out, func(a, b state.Alert) int {
		return newer(ref{a.OpenedID, a.DeviceID, a.Seq}, ref{b.OpenedID, b.DeviceID, b.Seq})
	})
	return out[:min(len(out), limit)], nil
}
