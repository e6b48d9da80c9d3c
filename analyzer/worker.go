package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/backoff"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/results"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// The refusals of the shard's scripts: another analyzer owns the shard
// now, or a former owner's pending entries must be applied first.
var (
	errLeaseLost      = results.ErrFenced
	errForeignPending = results.ErrForeignPending
)

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
	health   *shardHealth
	log      *zap.Logger

	results *results.Writer
	recent  *state.Recent
	recents map[string]*state.Recent // other signals' recent values, read when first needed
	// states holds device states as this worker last wrote them: while it
	// holds the lease no one else writes them, so they are what Redis
	// has, and a batch reads only the others. Apply changes states in
	// place, so any failure drops them all (load): Redis is the truth
	// again after a write that may or may not have happened, a lost
	// consumer group, a failover.
	states    map[string]*state.Device
	registry  *results.Registry // the fleet's signal names and tag values
	alerts    alertSender       // nil: delivery off
	outboxMax int
}

// alertSender delivers the device alerts of the shards this analyzer owns
// to Alertmanager (notify.Sender).
type alertSender interface {
	// Run delivers one shard's outbox until ctx ends.
	Run(ctx context.Context, keys notify.Keys) error
	// Wake makes every running shard read its outbox now.
	Wake()
}

// workerDeps is what the shard workers of one analyzer share.
type workerDeps struct {
	consumer    string
	rdb         redis.UniversalClient
	keys        shard.Keys
	params      analysis.Params // WINDOW_SIZE, ALERT_THRESHOLD, ALERT_RECOVERY, MAX_SIGNALS_PER_DEVICE
	maxFleet    int             // MAX_FLEET_SIGNALS
	count       int             // READ_COUNT
	leaseTTL    time.Duration
	timeout     time.Duration // REDIS_TIMEOUT
	newDetector func() detector.Detector
	m           *analyzerMetrics
	health      *shardHealth
	log         *zap.Logger
	alerts      alertSender // nil: delivery off
	outboxMax   int         // ALERT_OUTBOX_MAX, with alerts
}

// newShardWorker returns the worker of shard s while lease is held.
func newShardWorker(d workerDeps, s int, lease string) *shardWorker {
	det := d.newDetector()
	// Each worker its own registry: it is not shared between goroutines,
	// and Redis decides for all.
	maxFleet := d.maxFleet
	if maxFleet == 0 {
		maxFleet = config.DefaultMaxFleetSignals
	}
	registry := results.NewRegistry(d.rdb, d.keys, maxFleet)
	params := d.params
	params.Fleet = registry
	return &shardWorker{
		shard: s, lease: lease, consumer: d.consumer, rdb: d.rdb, keys: d.keys,
		window: d.params.Window, count: d.count, leaseTTL: d.leaseTTL, timeout: d.timeout,
		detector: det, applier: analysis.NewApplier(det, params), m: d.m, health: d.health,
		log: d.log.With(zap.Int("shard", s)), results: results.NewWriter(d.rdb, d.keys, s),
		recents: map[string]*state.Recent{}, states: map[string]*state.Device{}, registry: registry, alerts: d.alerts,
		outboxMax: d.outboxMax,
	}
}

// run processes the shard until ctx ends (it then finishes the batch in
// hand) or the lease is lost. Redis errors are retried with backoff: the
// entries stay pending and are read again, so nothing is skipped. Every
// failure goes through load, which also recreates what Redis may have
// lost (the consumer group, the stream), so the shard recovers by itself
// from a Redis that lost its data; while it cannot be processed, it is
// reported unhealthy (/ready, pulse_shard_healthy).
//
// Reads are plain XREADGROUPs, not fenced: a former owner that paused past
// its lease may still read entries into its own pending list. It cannot
// apply them (every write is fenced), and the write script refuses to
// apply anything while another consumer holds pending entries, so this
// worker then claims them and applies everything pending in stream order.
func (w *shardWorker) run(ctx context.Context) error {
	if w.alerts != nil {
		// The shard's alerts are delivered while, and only while, this
		// worker owns it: a successor carries on from the outbox's cursors.
		deliver, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := w.alerts.Run(deliver, notify.KeysFor(w.keys.Prefix, w.shard)); err != nil {
				w.log.Error("deliver alerts", zap.Error(err))
			}
		}()
		defer func() { stop(); <-done }()
	}
	var retries retry
	recovering := true // claim, reload, and apply pending entries before new ones
	pending := true
	for ctx.Err() == nil {
		if recovering {
			if err := w.load(ctx); err != nil {
				if errors.Is(err, errLeaseLost) {
					return err
				}
				if ctx.Err() != nil {
					break
				}
				w.health.fail(w.shard, err)
				w.log.Warn("load shard", zap.Error(err))
				retries.wait(ctx)
				continue
			}
			recovering, pending = false, true
		}
		entries, err := w.read(ctx, pending)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.health.fail(w.shard, err)
			// Redis may have lost our latest writes (a restart, a failover)
			// or everything (NOGROUP: load creates the group again): start
			// again from what is pending.
			w.log.Warn("read shard", zap.Error(err))
			recovering = true
			retries.wait(ctx)
			continue
		}
		if len(entries) == 0 {
			if pending {
				pending = false
				continue
			}
			w.health.ok(w.shard) // caught up
			// Idle: make sure no former owner sits on entries of ours.
			if foreign, err := w.foreignPending(ctx); err == nil && foreign {
				recovering = true
			}
			continue
		}
		if err := w.apply(entries); err != nil {
			switch {
			case errors.Is(err, errLeaseLost):
				return err
			case errors.Is(err, errForeignPending):
				w.log.Info("another consumer holds pending entries; claiming them", zap.Error(err))
				recovering = true
				continue
			}
			w.health.fail(w.shard, err)
			w.log.Warn("apply batch", zap.Error(err), zap.Int("entries", len(entries)))
			// The write may or may not have happened: read the pending
			// entries again (applied ones are skipped by their ids) and
			// reload the shard's recent values.
			recovering = true
			retries.wait(ctx)
			continue
		}
		retries.reset()
		w.health.ok(w.shard)
		if !pending && len(entries) < w.count {
			backoff.Sleep(ctx, readLinger)
		}
	}
	return nil
}

// load reads the shard's recent values, creates the consumer group again
// if Redis lost it, and claims the pending entries of earlier owners.
func (w *shardWorker) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	recent, err := w.results.Recent(ctx, w.window)
	switch {
	case errors.Is(err, state.ErrCorrupt):
		w.log.Error("recent values corrupt; starting empty", zap.Error(err))
	case err != nil:
		return err
	}
	w.recent = recent
	w.recents = map[string]*state.Recent{}
	w.states = map[string]*state.Device{}
	res, err := claimScript.Run(ctx, w.rdb, []string{w.keys.Lease(w.shard), w.keys.Stream(w.shard)},
		w.lease, shard.Group, w.consumer).Int64Slice()
	if err != nil {
		return results.ScriptError("claim", w.keys.Stream(w.shard), err)
	}
	if len(res) != 2 {
		return fmt.Errorf("claim %s: unexpected reply %v", w.keys.Stream(w.shard), res)
	}
	if res[1] == 1 {
		w.log.Warn("consumer group was missing (Redis lost data?); created it again", zap.String("stream", w.keys.Stream(w.shard)))
	}
	if res[0] > 0 {
		w.log.Info("claimed pending entries", zap.Int64("entries", res[0]))
	}
	return nil
}

// readBlock is how long a read for new entries waits when there are none.
const readBlock = time.Second

// readLinger is how long a worker waits after a short batch before reading
// again, so that a busy shard is applied in batches of some size: each
// batch costs a script call whatever its size. It adds at most this much
// to the end-to-end delay.
const readLinger = 5 * time.Millisecond

// read returns the next batch: this consumer's pending entries, oldest
// first, or new ones, waiting up to readBlock for them.
func (w *shardWorker) read(ctx context.Context, pending bool) ([]analysis.Entry, error) {
	args := &redis.XReadGroupArgs{Group: shard.Group, Consumer: w.consumer, Count: int64(w.count)}
	if pending {
		args.Streams = []string{w.keys.Stream(w.shard), "0"}
	} else {
		args.Streams = []string{w.keys.Stream(w.shard), ">"}
		args.Block = readBlock
	}
	res, err := w.rdb.XReadGroup(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("xreadgroup %s: %w", w.keys.Stream(w.shard), err)
	}
	return entriesOf(res), nil
}

// entriesOf is every entry of a reply, stream after stream.
func entriesOf(res []redis.XStream) []analysis.Entry {
	n := 0
	for _, st := range res {
		n += len(st.Messages)
	}
	entries := make([]analysis.Entry, 0, n)
	for _, st := range res {
		for _, m := range st.Messages {
			entries = append(entries, analysis.Entry{ID: m.ID, Values: m.Values})
		}
	}
	return entries
}

// foreignPending reports whether another consumer holds pending entries
// of the shard (read by a former owner after it lost the lease).
func (w *shardWorker) foreignPending(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	p, err := w.rdb.XPending(ctx, w.keys.Stream(w.shard), shard.Group).Result()
	if err != nil {
		return false, fmt.Errorf("xpending %s: %w", w.keys.Stream(w.shard), err)
	}
	for c, n := range p.Consumers {
		if c != w.consumer && n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// apply loads the states of the batch's devices, applies the batch and
// writes the results, acknowledging the entries in the same script.
func (w *shardWorker) apply(entries []analysis.Entry) error {
	// Not the worker's ctx: a stop request lets the batch in hand finish.
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	start := time.Now()
	d := analysis.Decode(entries)
	var missing []string
	for _, id := range d.DeviceIDs {
		if w.states[id] == nil {
			missing = append(missing, id)
		}
	}
	states, corrupt, err := w.results.States(ctx, missing, w.window)
	if err != nil {
		return err
	}
	for _, id := range d.DeviceIDs {
		if st := w.states[id]; st != nil {
			states[id] = st
		}
	}
	for _, id := range corrupt {
		// Refusing the batch would stop the shard for good.
		w.log.Error("device state corrupt; starting it anew", zap.String("device_id", id))
	}
	if err := w.registry.Prepare(ctx, d); err != nil {
		return err
	}
	res := w.applier.Apply(d, states, w.recent)
	recents, err := w.signalRecents(ctx, res.Signals)
	if err != nil {
		return err
	}
	err = w.results.Write(ctx, results.Batch{
		Lease: w.lease, Consumer: w.consumer, Detector: w.detector.Name(), Window: w.window,
		LeaseTTL: w.leaseTTL, Recent: w.recent, Recents: recents, Decoded: d, Result: res, OutboxMax: w.outboxMax,
	})
	if err != nil {
		clear(w.states) // some may be ahead of Redis now
		return err
	}
	w.keepStates(states)
	for reason, n := range res.DroppedSignals {
		w.m.signalsDropped.WithLabelValues(reason).Add(float64(n))
	}
	w.m.tagsDropped.Add(float64(res.DroppedTags))
	if w.alerts != nil && len(res.Alerts) > 0 {
		w.alerts.Wake()
	}

	now := time.Now()
	w.m.processed.Add(float64(res.Processed))
	w.m.duplicates.Add(float64(res.Duplicates))
	for sig, n := range res.BySignal {
		w.m.anomalies.WithLabelValues(sig).Add(float64(n))
	}
	w.m.alertsOpened.Add(float64(res.AlertsOpened))
	for _, c := range res.Alerts {
		w.log.Info("device alert", zap.Stringer("change", c.Change), zap.String("device_id", c.Alert.DeviceID), zap.String("signal", c.Alert.Signal),
			zap.String("alert_id", c.Alert.ID()), zap.Float64("score", c.Alert.Score), zap.Float64("value", c.Alert.Value),
			zap.Uint32("events", c.Alert.Events))
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

// stateCacheMax is the most device states a shard worker keeps between
// batches: about 3 KB each decoded, so 16 shards on two analyzers keep at
// most about 25 MB each.
const stateCacheMax = 1024

// keepStates keeps the states a batch wrote (and read), making room by
// dropping others at random.
func (w *shardWorker) keepStates(states map[string]*state.Device) {
	for id := range w.states {
		if len(w.states)+len(states) <= stateCacheMax {
			break
		}
		if states[id] == nil {
			delete(w.states, id)
		}
	}
	for id, st := range states {
		if len(w.states) >= stateCacheMax && w.states[id] == nil {
			break
		}
		w.states[id] = st
	}
}

// signalRecents adds the batch's values of signals other than rps to the
// shard's recent values of each, reading those not yet in hand, and
// returns the ones the batch changed.
func (w *shardWorker) signalRecents(ctx context.Context, signals map[string]*analysis.SignalBatch) (map[string]*state.Recent, error) {
	var missing []string
	for name := range signals {
		if w.recents[name] == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		got, err := w.results.SignalRecents(ctx, missing, w.window)
		if err != nil {
			return nil, err
		}
		for name, r := range got {
			w.recents[name] = r
		}
	}
	out := make(map[string]*state.Recent, len(signals))
	for name, sb := range signals {
		r := w.recents[name]
		for i, id := range sb.IDs {
			r.Add(id, sb.Values[i])
		}
		out[name] = r
	}
	return out, nil
}

func createGroup(ctx context.Context, rdb redis.UniversalClient, stream string) error {
	err := rdb.XGroupCreateMkStream(ctx, stream, shard.Group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("xgroup create %s: %w", stream, err)
	}
	return nil
}

// retry counts consecutive failures and waits longer after each: 50 ms,
// doubling up to maxBackoff.
type retry struct{ failures int }

const maxBackoff = 2 * time.Second

func (r *retry) reset() { r.failures = 0 }

// next is the wait after one more failure.
func (r *retry) next() time.Duration {
	r.failures++
	return backoff.Delay(r.failures, 50*time.Millisecond, maxBackoff)
}

func (r *retry) wait(ctx context.Context) { backoff.Sleep(ctx, r.next()) }

func itoa(i int) string { return strconv.Itoa(i) }
