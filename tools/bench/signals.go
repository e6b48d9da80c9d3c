package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/tools/loadgen"
)

// A memory-signals device's events are signalRoundStep apart: the
// analyzers' daily profile has 48 half-hour buckets (package score), so
// dayBuckets events this far apart fill each one, as a day of traffic
// does.
const (
	signalRoundStep = 30 * time.Minute
	dayBuckets      = 48
)

// memorySignals warms -signal-devices new devices with 2 signals per
// event, then as many others with 6, each with full windows and a full
// daily profile, and measures what each group added to Redis: the extra
// signals' cost per device and signal. The data is calm (no spikes), and
// the anomaly and alert keys are measured and left out: what is left is
// what a signal costs, not what its anomalies do.
func (b *bench) memorySignals(ctx context.Context) error {
	switch {
	case b.sys.rdb == nil:
		b.logf("memory-signals: skipped (no -redis)")
		return nil
	case b.noNamed != "":
		b.logf("memory-signals: skipped: %s", b.noNamed)
		return nil
	}
	n := b.o.signalDevices
	sm := &SignalMemory{Devices: n, EventsPerDevice: max(b.o.window, dayBuckets), WindowSize: b.o.window, RoundSeconds: signalRoundStep.Seconds()}
	b.logf("memory-signals: %d new devices with 2 signals, then %d with 6; %d events each, %v apart (full windows of %d, a day's half-hour buckets)…",
		n, n, sm.EventsPerDevice, signalRoundStep, b.o.window)
	stamp := time.Now().Unix()
	for _, isNamed := range []bool{false, true} {
		prefix := fmt.Sprintf("sig%d-%d", 2+len(named(isNamed)), stamp)
		g, err := b.signalGroup(ctx, prefix, n, sm.EventsPerDevice, isNamed)
		if err != nil {
			return err
		}
		if g == nil {
			b.logf("  skipped: the pipeline refuses named metrics (400)")
			return nil
		}
		sm.Groups = append(sm.Groups, g)
		b.logf("  %d signals: %s", g.Signals, g.oneLine())
	}
	sm.derive()
	b.rep.SignalMemory = sm
	b.logf("  %s", sm.oneLine())
	return nil
}

// signalGroup sends events to n new devices of prefix and returns what
// they added to Redis; nil if ingest refused every request with 400.
func (b *bench) signalGroup(ctx context.Context, prefix string, n, events int, isNamed bool) (*SignalGroup, error) {
	batch := min(b.o.batch, n)
	p, err := loadgen.Workload{Devices: n, Batch: batch, Bodies: (n*events + batch - 1) / batch, Prefix: prefix, Seed: 13,
		Named: named(isNamed), Calm: true, RoundStep: signalRoundStep}.Generate()
	if err != nil {
		return nil, err
	}
	sc := &LoadResult{
		Name: fmt.Sprintf("memory-signals-%d", p.Signals), Kind: "closed", BatchSize: batch, Devices: n, Concurrency: b.o.batchConcurrency,
		SignalsPerEvent: p.Signals,
		Description:     fmt.Sprintf("%d new devices × %d events of %d signals, no spikes, %v apart; POSTs of %d", n, events, p.Signals, signalRoundStep, batch),
	}
	if _, ok := b.drain(ctx, 0, b.o.drainTimeout); !ok {
		b.logf("  (the previous load is not drained)")
	}
	m0, err := b.redisMemory(ctx)
	if err != nil {
		return nil, err
	}
	f0, err := b.fleet(ctx)
	if err != nil {
		return nil, err
	}
	t := loadgen.Target{Client: loadgen.NewClient(b.o.batchConcurrency, requestTimeout), URL: b.sys.ingest + "/metrics", Pool: p}
	err = b.measureLoad(ctx, sc, false, func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunClosed(ctx, t, loadgen.Closed{Concurrency: b.o.batchConcurrency, Duration: 5 * time.Minute, MaxRequests: int64(len(p.Bodies))})
	})
	if err != nil {
		return nil, err
	}
	if sc.Requests > 0 && sc.Errors["400"] == sc.Requests {
		return nil, nil
	}
	m1, err := b.redisMemory(ctx)
	if err != nil {
		return nil, err
	}
	f1, err := b.fleet(ctx)
	if err != nil {
		return nil, err
	}
	keys := shard.Keys{Prefix: b.sys.prefix}
	own, err := b.anomalyAlertKeys(ctx, keys, prefix, n)
	if err != nil {
		return nil, err
	}
	g := &SignalGroup{
		Signals: p.Signals, Load: sc, NewDevicesSeen: f1.Devices - f0.Devices,
		Complete:         sc.AcceptedEvents == int64(len(p.Bodies)*batch) && sc.Drained,
		UsedMemory:       m1.used - m0.used,
		StreamBytes:      m1.streams - m0.streams,
		AnomalyAlertKeys: own + m1.shardLists - m0.shardLists,
		StateHashBytes:   m1.states - m0.states,
	}
	g.BytesPerDevice = round(float64(g.UsedMemory-g.StreamBytes-g.AnomalyAlertKeys)/float64(n), 1)
	g.StateHashBytesPerDevice = round(float64(g.StateHashBytes)/float64(n), 1)
	const sampleSize = 200
	var value int64
	for i := 0; i < min(sampleSize, n); i++ {
		id := loadgen.DeviceID(prefix, i*(n/min(sampleSize, n)))
		value += b.stateBytes(ctx, keys, shard.For(id, b.sys.shards), id)
	}
	g.Sampled = min(sampleSize, n)
	g.StateValueBytes = round(float64(value)/float64(g.Sampled), 1)
	return g, nil
}

// redisMemoryNow is what Redis holds at one instant: used_memory, and the
// parts a memory figure leaves out or looks at on their own.
type redisMemoryNow struct {
	used       int64 // INFO memory used_memory
	streams    int64 // the shards' streams
	states     int64 // the shards' hashes of device states
	shardLists int64 // the shards' anomaly and alert lists and open alerts
}

func (b *bench) redisMemory(ctx context.Context) (redisMemoryNow, error) {
	st := b.streamStats(ctx)
	if !st.known {
		return redisMemoryNow{}, fmt.Errorf("memory-signals: Redis INFO memory failed")
	}
	keys := shard.Keys{Prefix: b.sys.prefix}
	pipe := b.sys.rdb.Pipeline()
	var states, lists []*redis.IntCmd
	for s := 0; s < b.sys.shards; s++ {
		states = append(states, pipe.MemoryUsage(ctx, keys.DeviceStates(s), 0))
		for _, k := range []string{keys.Anomalies(s), keys.Alerts(s), keys.OpenAlerts(s)} {
			lists = append(lists, pipe.MemoryUsage(ctx, k, 0))
		}
	}
	pipe.Exec(ctx) // a key that does not exist fails its MEMORY USAGE only
	m := redisMemoryNow{used: st.usedMemory, streams: st.bytes}
	for _, c := range states {
		m.states += c.Val()
	}
	for _, c := range lists {
		m.shardLists += c.Val()
	}
	return m, nil
}

// anomalyAlertKeys adds up the memory of the anomaly lists and alert
// hashes of devices 0..n-1 of prefix.
func (b *bench) anomalyAlertKeys(ctx context.Context, keys shard.Keys, prefix string, n int) (int64, error) {
	var sum int64
	const chunk = 1000
	for lo := 0; lo < n; lo += chunk {
		pipe := b.sys.rdb.Pipeline()
		var cmds []*redis.IntCmd
		for i := lo; i < min(lo+chunk, n); i++ {
			id := loadgen.DeviceID(prefix, i)
			s := shard.For(id, b.sys.shards)
			cmds = append(cmds, pipe.MemoryUsage(ctx, keys.DeviceAnomalies(s, id), 0), pipe.MemoryUsage(ctx, keys.DeviceAlerts(s, id), 0))
		}
		pipe.Exec(ctx)
		for _, c := range cmds {
			switch v, err := c.Result(); {
			case err == nil:
				sum += v
			case err != redis.Nil:
				return 0, fmt.Errorf("memory usage: %w", err)
			}
		}
	}
	return sum, nil
}
