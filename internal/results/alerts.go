package results

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// Which alerts Reader.Alerts returns.
const (
	AlertsAll    = "all"
	AlertsOpen   = "open"
	AlertsClosed = "closed"
)

// ErrBadAlertState is returned for a state other than AlertsAll,
// AlertsOpen and AlertsClosed.
var ErrBadAlertState = errors.New("invalid alert state: want open, closed or all")

// alertRef is the reference to an alert the shard's list and open set
// hold: "<opening stream id> <alert id>", e.g. "1700000000000-0
// sensor-42:17". The stream id orders the fleet's alerts by their opening
// across shards without reading the records.
func alertRef(a state.Alert) string { return a.OpenedID.String() + " " + a.ID() }

// parseAlertRef splits a reference into the opening stream id, the
// device id and the alert number.
func parseAlertRef(ref string) (ID state.ID, deviceID string, seq uint64, err error) {
	sid, id, ok := strings.Cut(ref, " ")
	if !ok {
		return state.ID{}, "", 0, fmt.Errorf("alert reference %q: want <stream id> <alert id>", ref)
	}
	if ID, err = state.ParseID(sid); err != nil {
		return state.ID{}, "", 0, fmt.Errorf("alert reference %q: %w", ref, err)
	}
	if deviceID, seq, err = state.ParseAlertID(id); err != nil {
		return state.ID{}, "", 0, fmt.Errorf("alert reference %q: %w", ref, err)
	}
	return ID, deviceID, seq, nil
}

// ref is a parsed alert reference.
type ref struct {
	opened   state.ID
	deviceID string
	seq      uint64
}

// newer orders references newest first: by opening stream id, then (two
// alerts opened by one event) by number.
func newer(a, b ref) int {
	switch {
	case b.opened.Less(a.opened):
		return -1
	case a.opened.Less(b.opened):
		return 1
	case a.seq > b.seq:
		return -1
	case a.seq < b.seq:
		return 1
	}
	return strings.Compare(a.deviceID, b.deviceID)
}

// fresher returns the further along of two views of one alert: a record
// and the device state's, read at different times. A closed alert never
// changes again; an open one only counts more events.
func fresher(a, b state.Alert) state.Alert {
	switch {
	case !a.Open:
		return a
	case !b.Open:
		return b
	case b.Events > a.Events:
		return b
	}
	return a
}

func selects(which string, a state.Alert) bool {
	return which == AlertsAll || (which == AlertsOpen) == a.Open
}

// Alerts reads up to limit alerts in state which (AlertsAll, AlertsOpen
// or AlertsClosed), newest first: of one device (ErrNotFound for a device
// never seen) or, with deviceID "", of the fleet, merged across shards by
// the stream ids of their opening events. Open alerts are read from the
// device states, so their event counts are current.
func (s *Reader) Alerts(ctx context.Context, deviceID, which string, limit int) ([]state.Alert, error) {
	if which != AlertsAll && which != AlertsOpen && which != AlertsClosed {
		return nil, ErrBadAlertState
	}
	if limit < 1 {
		return []state.Alert{}, nil
	}
	if deviceID != "" {
		return s.deviceAlerts(ctx, deviceID, which, limit)
	}
	return s.fleetAlerts(ctx, which, limit)
}

// deviceAlerts reads the device's state, then the records of its newest
// alerts by number: at most one alert per signal is open at a time, so
// the newest limit closed ones are among the newest limit+signals numbers.
func (s *Reader) deviceAlerts(ctx context.Context, deviceID, which string, limit int) ([]state.Alert, error) {
	d, err := s.Device(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	if which == AlertsOpen {
		open := append([]state.Alert{}, d.OpenAlerts(deviceID)...)
		return open[:min(len(open), limit)], nil
	}
	live := map[uint64]state.Alert{}
	for sig := range d.SignalCount() {
		if a, ok := d.Alert(deviceID, sig); ok {
			live[a.Seq] = a
		}
	}
	span := uint64(limit)
	if which == AlertsClosed {
		span += uint64(d.SignalCount())
	}
	var fields []string
	for n := d.AlertSeq; n >= 1 && d.AlertSeq-n < span; n-- {
		fields = append(fields, strconv.FormatUint(n, 10))
	}
	out := []state.Alert{}
	if len(fields) == 0 {
		return out, nil
	}
	key := s.keys.DeviceAlerts(shard.For(deviceID, s.shards), deviceID)
	recs, err := s.rdb.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("hmget %s: %w", key, err)
	}
	for i, v := range recs {
		n := d.AlertSeq - uint64(i)
		a, ok := live[n]
		if raw, isRec := v.(string); isRec {
			rec, err := state.DecodeAlert([]byte(raw))
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", key, fields[i], err)
			}
			if ok {
				rec = fresher(rec, a)
			}
			a, ok = rec, true
		}
		if ok && selects(which, a) && len(out) < limit {
			out = append(out, a)
		}
	}
	return out, nil
}

// fleetAlerts merges the shards' references, newest first, and reads the
// first limit of the state asked for: open ones from the device states,
// the others from their records (a record whose alert is still open is
// brought up to date from its device's state).
func (s *Reader) fleetAlerts(ctx context.Context, which string, limit int) ([]state.Alert, error) {
	pipe := s.rdb.Pipeline()
	lists := make([]*redis.StringSliceCmd, s.shards)
	sets := make([]*redis.StringSliceCmd, s.shards)
	for i := 0; i < s.shards; i++ {
		if which != AlertsOpen {
			stop := int64(limit - 1)
			if which == AlertsClosed {
				stop = -1 // open ones are skipped: any may be needed
			}
			lists[i] = pipe.LRange(ctx, s.keys.Alerts(i), 0, stop)
		}
		if which != AlertsAll {
			sets[i] = pipe.SMembers(ctx, s.keys.OpenAlerts(i))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read fleet alerts: %w", err)
	}
	open := map[string]bool{}
	var refs []ref
	add := func(raw string) error {
		id, dev, seq, err := parseAlertRef(raw)
		if err != nil {
			return err
		}
		refs = append(refs, ref{id, dev, seq})
		return nil
	}
	for i := 0; i < s.shards; i++ {
		if sets[i] != nil {
			for _, r := range sets[i].Val() {
				open[r] = true
				if which == AlertsOpen {
					if err := add(r); err != nil {
						return nil, err
					}
				}
			}
		}
		if lists[i] != nil {
			for _, r := range lists[i].Val() {
				if which == AlertsClosed && open[r] {
					continue
				}
				if err := add(r); err != nil {
					return nil, err
				}
			}
		}
	}
	slices.SortFunc(refs, newer)
	if which == AlertsOpen {
		return s.liveAlerts(ctx, refs[:min(len(refs), limit)])
	}
	out := []state.Alert{}
	// Closed: a reference may turn out open or gone (it opened or closed,
	// or its record was trimmed, since the lists were read): read more.
	for len(refs) > 0 && len(out) < limit {
		chunk := refs[:min(len(refs), limit-len(out))]
		refs = refs[len(chunk):]
		recs, err := s.records(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, a := range recs {
			if selects(which, a) {
				out = append(out, a)
			}
		}
		if which == AlertsAll {
			break
		}
	}
	return out, nil
}

// records reads the records of refs, in order, skipping those that are
// gone; open ones are brought up to date from their device's state.
func (s *Reader) records(ctx context.Context, refs []ref) ([]state.Alert, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(refs))
	for i, r := range refs {
		cmds[i] = pipe.HGet(ctx, s.keys.DeviceAlerts(shard.For(r.deviceID, s.shards), r.deviceID), strconv.FormatUint(r.seq, 10))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read alert records: %w", err)
	}
	out := make([]state.Alert, 0, len(refs))
	var open []ref
	for i, c := range cmds {
		raw, err := c.Bytes()
		if err != nil {
			continue // trimmed since the list was read
		}
		a, err := state.DecodeAlert(raw)
		if err != nil {
			return nil, fmt.Errorf("alert %s: %w", state.AlertID(refs[i].deviceID, refs[i].seq), err)
		}
		out = append(out, a)
		if a.Open {
			open = append(open, refs[i])
		}
	}
	if len(open) == 0 {
		return out, nil
	}
	live, err := s.liveAlerts(ctx, open)
	if err != nil {
		return nil, err
	}
	byID := map[string]state.Alert{}
	for _, a := range live {
		byID[a.ID()] = a
	}
	for i, a := range out {
		if l, ok := byID[a.ID()]; ok {
			out[i] = fresher(a, l)
		}
	}
	return out, nil
}

// liveAlerts reads the alerts of refs from their devices' states, in
// order; those that are no longer the current alert of their signal, or
// no longer open, are skipped (they closed since the reference was read).
func (s *Reader) liveAlerts(ctx context.Context, refs []ref) ([]state.Alert, error) {
	pipe := s.rdb.Pipeline()
	cmds := map[string]*redis.StringCmd{}
	for _, r := range refs {
		if cmds[r.deviceID] == nil {
			cmds[r.deviceID] = pipe.HGet(ctx, s.keys.DeviceStates(shard.For(r.deviceID, s.shards)), r.deviceID)
		}
	}
	if len(cmds) == 0 {
		return []state.Alert{}, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read device states: %w", err)
	}
	states := map[string]*state.Device{}
	for id, c := range cmds {
		raw, err := c.Bytes()
		if err != nil {
			continue // gone
		}
		d, err := state.DecodeDevice(raw, s.window)
		if err != nil {
			return nil, fmt.Errorf("decode device %s: %w", id, err)
		}
		states[id] = d
	}
	out := []state.Alert{}
	for _, r := range refs {
		d := states[r.deviceID]
		if d == nil {
			continue
		}
		for sig := range d.SignalCount() {
			if a, ok := d.Alert(r.deviceID, sig); ok && a.Seq == r.seq && a.Open {
				out = append(out, a)
			}
		}
	}
	return out, nil
}
