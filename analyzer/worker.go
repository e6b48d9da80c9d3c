package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// anomalyHistory is how many anomalies each device and shard list keeps.
const anomalyHistory = 1000

// errLeaseLost means another analyzer owns the shard now.
var errLeaseLost = errors.New("shard lease lost")

// shardWorker processes one shard while this analyzer holds its lease.
type shardWorker struct {
	shard    int
	lease    string // "owner:token", checked by every script
	consumer string
	rdb      redis.UniversalClient
	keys     shard.Keys
	window   int
	count    int
	leaseTTL time.Duration
	timeout  time.Duration
	detector detector.Detector
	applier  *analysis.Applier
	m        *analyzerMetrics
	log      *zap.Logger

	recent  *state.Recent
	args    []any // reused between batches
	scratch []byte
}

// run processes the shard until ctx ends (it then finishes the batch in
// hand) or the lease is lost. Redis errors are retried with backoff: the
// entries stay pending and are read again, so nothing is skipped.
func (w *shardWorker) run(ctx context.Context) error {
	backoff := newBackoff()
	pending := true // read our own pending entries ("0") before new ones (">")
	loaded := false
	var last string
	for ctx.Err() == nil {
		if !loaded {
			if err := w.load(ctx); err != nil {
				if errors.Is(err, errLeaseLost) {
					return err
				}
				w.log.Warn("load shard", zap.Error(err))
				backoff.wait(ctx)
				continue
			}
			loaded = true
		}
		id := ">"
		if pending {
			id = "0"
		}
		entries, lastDelivered, err := w.read(ctx, id)
		if err != nil {
			if errors.Is(err, errLeaseLost) {
				return err
			}
			if strings.Contains(err.Error(), "NOGROUP") {
				err = createGroup(ctx, w.rdb, w.keys.Stream(w.shard))
			}
			if err != nil && ctx.Err() == nil {
				w.log.Warn("read shard", zap.Error(err))
			}
			// Redis may have lost our latest writes (a failover to a
			// replica that had not received them, or a restart without
			// its last second): read our pending entries again before new
			// ones, or an entry whose ack was lost would stay pending and,
			// once newer entries of its device are applied, be skipped.
			pending, loaded = true, false
			backoff.wait(ctx)
			continue
		}
		if len(entries) == 0 {
			if pending {
				pending = false
				continue
			}
			if lastDelivered != "" {
				last = lastDelivered
			}
			if err := w.waitForEntries(ctx, last); err != nil && ctx.Err() == nil {
				w.log.Warn("wait for entries", zap.Error(err))
				pending, loaded = true, false // as after a failed read
				backoff.wait(ctx)
			}
			continue
		}
		if err := w.apply(entries); err != nil {
			if errors.Is(err, errLeaseLost) {
				return err
			}
			w.log.Warn("apply batch", zap.Error(err), zap.Int("entries", len(entries)))
			// The write may or may not have happened: read the pending
			// entries again (applied ones are skipped by their ids) and
			// reload the shard's recent values.
			pending, loaded = true, false
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		last = entries[len(entries)-1].ID
	}
	return nil
}

// load reads the shard's recent values and claims the pending entries of
// earlier owners.
func (w *shardWorker) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	raw, err := w.rdb.HGet(ctx, w.keys.Stats(w.shard), "recent").Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("hget %s: %w", w.keys.Stats(w.shard), err)
	}
	recent, err := state.DecodeRecent(raw, w.window)
	if err != nil {
		w.log.Error("recent values corrupt; starting empty", zap.Error(err))
		recent = &state.Recent{Size: w.window}
	}
	w.recent = recent
	n, err := claimScript.Run(ctx, w.rdb, []string{w.keys.Lease(w.shard), w.keys.Stream(w.shard)},
		w.lease, shard.Group, w.consumer).Int()
	if err != nil {
		return scriptErr("claim", w.keys.Stream(w.shard), err)
	}
	if n > 0 {
		w.log.Info("claimed pending entries", zap.Int("entries", n))
	}
	return nil
}

func (w *shardWorker) read(ctx context.Context, id string) ([]analysis.Entry, string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	res, err := readScript.Run(ctx, w.rdb, []string{w.keys.Lease(w.shard), w.keys.Stream(w.shard)},
		w.lease, shard.Group, w.consumer, w.count, id).Slice()
	if err != nil {
		return nil, "", scriptErr("read", w.keys.Stream(w.shard), err)
	}
	if len(res) == 2 && res[0] == nil {
		last, _ := res[1].(string)
		return nil, last, nil
	}
	entries := make([]analysis.Entry, 0, len(res))
	for _, r := range res {
		e, ok := r.([]any)
		if !ok || len(e) != 2 {
			return nil, "", fmt.Errorf("read %s: unexpected reply %v", w.keys.Stream(w.shard), r)
		}
		id, _ := e[0].(string)
		entry := analysis.Entry{ID: id}
		if fields, ok := e[1].([]any); ok {
			entry.Values = make(map[string]any, len(fields)/2)
			for i := 0; i+1 < len(fields); i += 2 {
				k, _ := fields[i].(string)
				entry.Values[k] = fields[i+1]
			}
		}
		entries = append(entries, entry)
	}
	return entries, "", nil
}

// waitForEntries blocks until the stream has entries after last (or a
// second passes). It changes nothing, so it needs no lease check.
func (w *shardWorker) waitForEntries(ctx context.Context, last string) error {
	if last == "" {
		last = "$"
	}
	err := w.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{w.keys.Stream(w.shard), last},
		Count:   1,
		Block:   time.Second,
	}).Err()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// apply loads the states of the batch's devices, applies the batch and
// writes the results, acknowledging the entries in the same script.
func (w *shardWorker) apply(entries []analysis.Entry) error {
	// Not the worker's ctx: a stop request lets the batch in hand finish.
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	start := time.Now()
	d := analysis.Decode(entries)
	states := make(map[string]*state.Device, len(d.DeviceIDs))
	if len(d.DeviceIDs) > 0 {
		keys := make([]string, len(d.DeviceIDs))
		for i, id := range d.DeviceIDs {
			keys[i] = w.keys.Device(w.shard, id)
		}
		vals, err := w.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return fmt.Errorf("mget device states of %s: %w", w.keys.Stream(w.shard), err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // a device never seen
			}
			st, err := state.DecodeDevice([]byte(s), w.window)
			if err != nil {
				// Refusing the batch would stop the shard for good.
				w.log.Error("device state corrupt; starting it anew", zap.String("device_id", d.DeviceIDs[i]), zap.Error(err))
				continue
			}
			states[d.DeviceIDs[i]] = st
		}
	}
	res := w.applier.Apply(d, states, w.recent)

	keys, args := w.writeArgs(d, res)
	if err := writeScript.Run(ctx, w.rdb, keys, args...).Err(); err != nil {
		return scriptErr("write", w.keys.Stream(w.shard), err)
	}

	now := time.Now()
	w.m.processed.Add(float64(res.Processed))
	w.m.duplicates.Add(float64(res.Duplicates))
	for sig, n := range res.BySignal {
		w.m.anomalies.WithLabelValues(sig).Add(float64(n))
	}
	for _, dl := range d.Dead {
		w.m.deadLettered.WithLabelValues(dl.Reason).Inc()
		w.log.Warn("dead-lettered entry", zap.Int("shard", w.shard), zap.String("stream_id", dl.ID), zap.String("reason", dl.Reason))
	}
	for _, rt := range res.Receipts {
		w.m.endToEnd.Observe(now.Sub(time.Unix(0, rt)).Seconds())
	}
	w.m.batchSize.Observe(float64(len(entries)))
	w.m.applyDuration.Observe(now.Sub(start).Seconds())
	return nil
}

func (w *shardWorker) writeArgs(d analysis.Decoded, res analysis.Result) ([]string, []any) {
	s := w.shard
	keys := make([]string, 0, 6+2*len(res.Updates))
	keys = append(keys, w.keys.Lease(s), w.keys.Stats(s), w.keys.Stream(s), w.keys.Devices(s), w.keys.Anomalies(s), w.keys.DeadLetter(s))
	w.scratch = w.recent.AppendBinary(w.scratch[:0])
	args := w.args[:0]
	args = append(args, w.lease, shard.Group, w.detector.Name(), res.Processed, res.AnomalousEvents,
		w.scratch, anomalyHistory, w.window,
		len(res.Updates), len(res.Anomalies), len(d.Acks), len(d.Dead), w.leaseTTL.Milliseconds())
	for _, u := range res.Updates {
		keys = append(keys, w.keys.Device(s, u.DeviceID), w.keys.DeviceAnomalies(s, u.DeviceID))
		isNew := "0"
		if u.New {
			isNew = "1"
		}
		args = append(args, u.State.AppendBinary(nil), u.DeviceID, isNew, len(u.Anomalies))
		for _, a := range u.Anomalies {
			args = append(args, a.Encode())
		}
	}
	for _, a := range res.Anomalies {
		args = append(args, a.Encode())
	}
	for _, id := range d.Acks {
		args = append(args, id)
	}
	for _, dl := range d.Dead {
		payload, _ := json.Marshal(dl.Values)
		args = append(args, dl.ID, dl.Reason, payload)
	}
	w.args = args[:0]
	return keys, args
}

// scriptErr turns a fenced script's refusal into errLeaseLost.
func scriptErr(op, key string, err error) error {
	if strings.HasPrefix(err.Error(), "FENCED") {
		return fmt.Errorf("%s %s: %w", op, key, errLeaseLost)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func createGroup(ctx context.Context, rdb redis.UniversalClient, stream string) error {
	err := rdb.XGroupCreateMkStream(ctx, stream, shard.Group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("xgroup create %s: %w", stream, err)
	}
	return nil
}

// backoff waits longer after each consecutive failure, up to two seconds.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.d = 0 }

func (b *backoff) wait(ctx context.Context) {
	if b.d == 0 {
		b.d = 50 * time.Millisecond
	} else if b.d < 2*time.Second {
		b.d *= 2
	}
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
