package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/tools/loadgen"
)

// requestTimeout bounds every load request, as a device's client would.
const requestTimeout = 10 * time.Second

func (b *bench) runScenarios(ctx context.Context) error {
	want := func(s string) bool { return contains(b.o.scenarios, s) }
	b.waitShardsSettled(ctx)
	if want("xadd") {
		if err := b.xadd(ctx); err != nil {
			return err
		}
	}
	if want("open") || want("single") || want("batch") || want("single-6") || want("batch-6") {
		if err := b.warmUp(ctx); err != nil {
			return err
		}
	}
	if want("open") {
		for _, rate := range b.o.rates {
			if err := b.open(ctx, rate); err != nil {
				return err
			}
		}
	}
	// The ceiling right before single: the same machine state for the
	// ratio of the two.
	if want("ceiling") {
		if err := b.ceiling(ctx); err != nil {
			return err
		}
	}
	// Each 6-signal load right after its 2-signal one: the same machine
	// state for the ratio of the two.
	loads := []struct {
		name        string
		batch, conc int
		named       bool
	}{
		{"single", 1, b.o.concurrency, false},
		{"single-6", 1, b.o.concurrency, true},
		{"batch", b.o.batch, b.o.batchConcurrency, false},
		{"batch-6", b.o.batch, b.o.batchConcurrency, true},
	}
	for _, l := range loads {
		if !want(l.name) {
			continue
		}
		if l.named && b.noNamed != "" {
			b.logf("%s: skipped: %s", l.name, b.noNamed)
			continue
		}
		if err := b.closed(ctx, l.name, l.batch, l.conc, l.named); err != nil {
			return err
		}
	}
	if want("memory") {
		if err := b.memory(ctx); err != nil {
			return err
		}
	}
	if want("memory-signals") {
		if err := b.memorySignals(ctx); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// waitShardsSettled waits (at most 30 s) until the analyzers own every
// shard between them, each at least one, unchanged for a second: an
// analyzer that joins takes its shards over within about a second, and
// the events of a shard changing hands wait that long, which a load
// measured meanwhile would report as analysis delay.
func (b *bench) waitShardsSettled(ctx context.Context) {
	if len(b.sys.analyzers) == 0 {
		return
	}
	owned := func() []float64 {
		var out []float64
		for _, a := range b.sys.analyzers {
			m, err := promtext.Scrape(ctx, b.sys.http, a+"/prometheus")
			if err != nil || !m.Has("pulse_shards_owned") {
				return nil
			}
			out = append(out, m.Sum("pulse_shards_owned", nil))
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	var last []float64
	stableSince := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		o := owned()
		var sum float64
		ok := o != nil
		for _, n := range o {
			sum += n
			ok = ok && n > 0
		}
		ok = ok && int(sum) == b.sys.shards
		if !ok || fmt.Sprint(o) != fmt.Sprint(last) {
			stableSince = time.Now()
		}
		last = o
		if ok && time.Since(stableSince) >= time.Second {
			b.logf("shards settled: %v owned by the %d analyzers", o, len(o))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.logf("shards not settled after 30 s (owned: %v); measuring anyway", last)
}

// benchPrefix names the devices of the load scenarios; the memory
// scenario uses new ones. namedPrefix names the devices of the 6-signal
// loads: devices of their own, so that the 2-signal loads and the warm
// devices the memory scenario samples keep states of 2 signals.
const (
	benchPrefix = "bench"
	namedPrefix = "bench6"
)

// named returns the named signals of a load's events: none, or the 4 of
// the 6-signal loads.
func named(on bool) []string {
	if !on {
		return nil
	}
	return loadgen.NamedSignals
}

// pool returns request bodies over the load scenarios' devices, with 2
// signals per event or, named, 6 (on the 6-signal loads' devices).
func (b *bench) pool(batch int, isNamed bool) (*loadgen.Pool, error) {
	bodies := min(max(4*b.o.devices/batch, 64), 100000)
	prefix := benchPrefix
	if isNamed {
		prefix = namedPrefix
	}
	return loadgen.Workload{Devices: b.o.devices, Batch: batch, Bodies: bodies, Prefix: prefix, Seed: uint64(batch), Named: named(isNamed)}.Generate()
}

// warmUp sends one event per device, so that the loads measure a fleet
// whose devices all exist, and opens the connections; the 6-signal
// loads' devices too when they are to run. A pipeline that refuses named
// metrics (400: the code before them, built with -src) skips the 6-signal
// scenarios.
func (b *bench) warmUp(ctx context.Context) error {
	want := func(s string) bool { return contains(b.o.scenarios, s) }
	if want("open") || want("single") || want("batch") {
		if _, err := b.warmDevices(ctx, benchPrefix, false); err != nil {
			return err
		}
	}
	if want("single-6") || want("batch-6") {
		refused, err := b.warmDevices(ctx, namedPrefix, true)
		if err != nil {
			return err
		}
		if refused {
			b.noNamed = "the pipeline refuses named metrics (400)"
			b.logf("warm-up: %s: no 6-signal loads", b.noNamed)
		}
	}
	return nil
}

// warmDevices sends one event to each of the load scenarios' devices of
// prefix; refused reports that ingest answered every request 400.
func (b *bench) warmDevices(ctx context.Context, prefix string, isNamed bool) (refused bool, err error) {
	batch := min(b.o.batch, b.o.devices)
	p, err := loadgen.Workload{Devices: b.o.devices, Batch: batch, Bodies: (b.o.devices + batch - 1) / batch, Prefix: prefix, Seed: 7, Named: named(isNamed)}.Generate()
	if err != nil {
		return false, err
	}
	before, err := b.fleet(ctx)
	if err != nil {
		return false, fmt.Errorf("api: %w", err)
	}
	t := loadgen.Target{Client: loadgen.NewClient(2, requestTimeout), URL: b.sys.ingest + "/metrics", Pool: p}
	res, err := loadgen.RunClosed(ctx, t, loadgen.Closed{Concurrency: 2, Duration: time.Minute, MaxRequests: int64(len(p.Bodies))})
	if err != nil {
		return false, err
	}
	if isNamed && res.Requests > 0 && res.Errors["400"] == res.Requests {
		return true, nil
	}
	if res.Failed() > 0 {
		return false, fmt.Errorf("warm-up: %d of %d requests failed: %v", res.Failed(), res.Requests, res.Errors)
	}
	d, ok := b.drain(ctx, before.TotalProcessed+res.Events, b.o.drainTimeout)
	b.logf("warm-up: %d devices (%s-…, %d signals), one event each, analyzed in %.1fs (drained: %v)", b.o.devices, prefix, p.Signals, d.Seconds(), ok)
	return false, nil
}

func (b *bench) open(ctx context.Context, rate int) error {
	p, err := b.pool(1, false)
	if err != nil {
		return err
	}
	inFlight := 256
	sc := &LoadResult{
		Name: fmt.Sprintf("open-%d", rate), Kind: "open", BatchSize: 1, Devices: b.o.devices, RateTarget: rate,
		MaxInFlight: inFlight, Description: fmt.Sprintf("open loop, single-event POSTs at %d/s", rate), SignalsPerEvent: p.Signals,
	}
	b.logf("%s: %s for %v…", sc.Name, sc.Description, b.o.duration)
	t := loadgen.Target{Client: loadgen.NewClient(inFlight, requestTimeout), URL: b.sys.ingest + "/metrics", Pool: p}
	err = b.measureLoad(ctx, sc, false, func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunOpen(ctx, t, loadgen.Open{Rate: float64(rate), Duration: b.o.duration, MaxInFlight: inFlight, Grace: requestTimeout})
	})
	if err != nil {
		return err
	}
	b.rep.Scenarios = append(b.rep.Scenarios, sc)
	b.logf("  %s", sc.oneLine())
	return nil
}

func (b *bench) closed(ctx context.Context, name string, batch, conc int, isNamed bool) error {
	p, err := b.pool(batch, isNamed)
	if err != nil {
		return err
	}
	sc := &LoadResult{
		Name: name, Kind: "closed", BatchSize: batch, Devices: b.o.devices, Concurrency: conc, SignalsPerEvent: p.Signals,
		Description: fmt.Sprintf("closed loop, %d connections, POSTs of %d event(s)", conc, batch),
	}
	if batch == 1 {
		sc.Description = fmt.Sprintf("closed loop, %d connections, single-event POSTs", conc)
	}
	if isNamed {
		sc.Description += fmt.Sprintf(", %d signals each (cpu, rps, %s)", p.Signals, strings.Join(named(true), ", "))
	}
	b.logf("%s: %s for %v…", sc.Name, sc.Description, b.o.duration)
	t := loadgen.Target{Client: loadgen.NewClient(conc, requestTimeout), URL: b.sys.ingest + "/metrics", Pool: p}
	// Bounded in count too: far more than the machine can send.
	maxRequests := int64(b.o.duration.Seconds() * 2e6 / float64(batch))
	err = b.measureLoad(ctx, sc, b.o.pprof || b.o.perf, func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunClosed(ctx, t, loadgen.Closed{Concurrency: conc, Duration: b.o.duration, MaxRequests: maxRequests})
	})
	if err != nil {
		return err
	}
	b.rep.Scenarios = append(b.rep.Scenarios, sc)
	b.logf("  %s", sc.oneLine())
	return nil
}

var rpsRE = regexp.MustCompile(`([0-9.]+) requests per second`)

// xadd runs redis-benchmark's pipelined XADD against the pipeline's Redis:
// the most entries per second this Redis can store on this machine, the
// ceiling of ingest's throughput.
func (b *bench) xadd(ctx context.Context) error {
	if b.sys.redisPort == 0 {
		b.logf("xadd: skipped (no -redis)")
		return nil
	}
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		b.logf("xadd: skipped: redis-benchmark not found (apt-get install redis-tools)")
		return nil
	}
	key := b.sys.prefix + ":bench:xadd"
	ts := strconv.FormatFloat(float64(time.Now().UnixMilli())/1000, 'f', 3, 64)
	shapes := []struct {
		name   string
		fields []string
	}{
		{"XADD key * f v", []string{"f", "v"}},
		{"XADD of a Pulse entry (5 fields)", []string{"d", "bench-004242", "c", "45.12", "r", "123.45", "t", ts, "rt", strconv.FormatInt(time.Now().UnixNano(), 10)}},
	}
	x := &Xadd{Requests: 200000, Pipeline: 64, Clients: 50, Runs: 3}
	for _, sh := range shapes {
		var rates []float64
		for i := 0; i < x.Runs; i++ {
			args := []string{"-h", b.sys.redisHost, "-p", strconv.Itoa(b.sys.redisPort), "-n", strconv.Itoa(x.Requests),
				"-P", strconv.Itoa(x.Pipeline), "-c", strconv.Itoa(x.Clients), "-q", "XADD", key, "*"}
			args = append(args, sh.fields...)
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			cmd := exec.CommandContext(cctx, bin, args...)
			if pw := os.Getenv("REDIS_PASSWORD"); pw != "" && !b.sys.own {
				cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+pw)
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			cancel()
			b.sys.rdb.Del(ctx, key)
			m := rpsRE.FindAllStringSubmatch(out.String(), -1)
			if err != nil || len(m) == 0 {
				return fmt.Errorf("redis-benchmark: %v\n%s", err, out.String())
			}
			r, _ := strconv.ParseFloat(m[len(m)-1][1], 64)
			rates = append(rates, r)
		}
		sort.Float64s(rates)
		x.Shapes = append(x.Shapes, XaddShape{Command: sh.name, PerSecond: rates, Median: rates[len(rates)/2]})
	}
	x.Command = fmt.Sprintf("redis-benchmark -n %d -P %d -c %d -q XADD key '*' f v", x.Requests, x.Pipeline, x.Clients)
	b.rep.Xadd = x
	for _, s := range x.Shapes {
		b.logf("xadd: %s: %.0f/s (median of %d)", s.Command, s.Median, x.Runs)
	}
	return nil
}

// memory ingests memDevices new devices, 3 events each, and measures what
// they cost: Redis's used_memory delta per device (results, anomaly lists,
// device index; the streams are trimmed once analyzed) and the processes'
// resident memory.
func (b *bench) memory(ctx context.Context) error {
	if b.sys.rdb == nil {
		b.logf("memory: skipped (no -redis)")
		return nil
	}
	const perDevice = 3
	n := b.o.memDevices
	prefix := fmt.Sprintf("mem%d", time.Now().Unix())
	batch := min(b.o.batch, n)
	p, err := loadgen.Workload{Devices: n, Batch: batch, Bodies: (n*perDevice + batch - 1) / batch, Prefix: prefix, Seed: 11}.Generate()
	if err != nil {
		return err
	}
	m := &Memory{Devices: n, EventsPerDevice: perDevice}
	sc := &LoadResult{
		Name: "memory", Kind: "closed", BatchSize: batch, Devices: n, Concurrency: b.o.batchConcurrency, SignalsPerEvent: p.Signals,
		Description: fmt.Sprintf("%d new devices × %d events, POSTs of %d", n, perDevice, batch),
	}
	b.logf("memory: %s…", sc.Description)
	if _, ok := b.drain(ctx, 0, b.o.drainTimeout); !ok {
		b.logf("  (the previous load is not drained)")
	}
	keys := shard.Keys{Prefix: b.sys.prefix}
	zsets := func() int64 {
		var sum int64
		for s := 0; s < b.sys.shards; s++ {
			sum += b.sys.rdb.MemoryUsage(ctx, keys.Devices(s), 0).Val()
		}
		return sum
	}
	st0 := b.streamStats(ctx)
	z0 := zsets()
	f0, err := b.fleet(ctx)
	if err != nil {
		return err
	}
	t := loadgen.Target{Client: loadgen.NewClient(b.o.batchConcurrency, requestTimeout), URL: b.sys.ingest + "/metrics", Pool: p}
	err = b.measureLoad(ctx, sc, false, func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunClosed(ctx, t, loadgen.Closed{Concurrency: b.o.batchConcurrency, Duration: 5 * time.Minute, MaxRequests: int64(len(p.Bodies))})
	})
	if err != nil {
		return err
	}
	m.Load = sc
	m.Complete = sc.AcceptedEvents == int64(n*perDevice) && sc.Drained
	if !m.Complete {
		b.logf("  warning: %d of %d events accepted, drained: %v: the figures below are not per device", sc.AcceptedEvents, n*perDevice, sc.Drained)
	}
	st1 := b.streamStats(ctx)
	z1 := zsets()
	f1, err := b.fleet(ctx)
	if err != nil {
		return err
	}
	m.NewDevicesSeen = f1.Devices - f0.Devices
	m.UsedMemoryBefore, m.UsedMemoryAfter = st0.usedMemory, st1.usedMemory
	m.StreamBytesBefore, m.StreamBytesAfter = st0.bytes, st1.bytes
	delta := (st1.usedMemory - st0.usedMemory) - (st1.bytes - st0.bytes)
	m.BytesPerDevice = round(float64(delta)/float64(n), 0)
	m.DeviceIndexBytesPerDevice = round(float64(z1-z0)/float64(n), 1)

	// A sample of the devices' own keys, exactly (SAMPLES 0).
	const sampleSize = 200
	var stateBytes, listBytes, lists int64
	for i := 0; i < sampleSize; i++ {
		id := loadgen.DeviceID(prefix, i*(n/sampleSize))
		s := shard.For(id, b.sys.shards)
		stateBytes += b.stateBytes(ctx, keys, s, id)
		if l, err := b.sys.rdb.MemoryUsage(ctx, keys.DeviceAnomalies(s, id), 0).Result(); err == nil {
			listBytes += l
			lists++
		} else if err != redis.Nil {
			return fmt.Errorf("memory usage: %w", err)
		}
	}
	m.SampledDevices = sampleSize
	m.StateKeyBytes = round(float64(stateBytes)/sampleSize, 1)
	m.DevicesWithAnomalyList = round(float64(lists)/sampleSize, 3)
	if lists > 0 {
		m.AnomalyListKeyBytes = round(float64(listBytes)/float64(lists), 1)
	}
	if contains(b.o.scenarios, "single") || contains(b.o.scenarios, "batch") {
		w, err := b.sampleWarmDevices(ctx, keys, sampleSize)
		if err != nil {
			return err
		}
		m.Warm = w
		if w != nil {
			fresh := m.BytesPerDevice - m.StateKeyBytes - m.DevicesWithAnomalyList*m.AnomalyListKeyBytes
			w.ProjectedBytesPerDevice = round(fresh+w.StateKeyBytes+w.WithAnomalyList*w.AnomalyListBytes, 0)
			w.ProjectedAtListCap = round(fresh+w.StateKeyBytes+anomalyListCap*w.BytesPerAnomaly, 0)
		}
	}
	m.RSS = map[string]RSS{}
	for _, pr := range b.sys.procs {
		if rss, peak, err := loadgen.ProcessMemory(pr.pid); err == nil {
			m.RSS[pr.name] = RSS{Bytes: rss, PeakBytes: peak}
		}
	}
	b.rep.Memory = m
	b.logf("  %s", m.oneLine())
	return nil
}

// stateBytes returns the size of a device's analysis state: its value in
// the shard's hash of states, or, in pipelines from before that layout
// (-src of an older commit), the memory of its own key.
func (b *bench) stateBytes(ctx context.Context, keys shard.Keys, s int, id string) int64 {
	if n := b.sys.rdb.HStrLen(ctx, keys.DeviceStates(s), id).Val(); n > 0 {
		return n
	}
	old := keys.Prefix + ":device:{" + strconv.Itoa(s) + "}:" + id
	return b.sys.rdb.MemoryUsage(ctx, old, 0).Val()
}

// anomalyListCap is how many anomalies the analyzer keeps per device.
const anomalyListCap = 1000

// sampleWarmDevices samples the load scenarios' devices, which by now have
// seen many events: full windows and anomaly lists, the steady state.
func (b *bench) sampleWarmDevices(ctx context.Context, keys shard.Keys, n int) (*WarmDevices, error) {
	n = min(n, b.o.devices)
	w := &WarmDevices{Sampled: n}
	var state, list, lists, entries, events int64
	for i := 0; i < n; i++ {
		id := loadgen.DeviceID(benchPrefix, i*(b.o.devices/n))
		s := shard.For(id, b.sys.shards)
		state += b.stateBytes(ctx, keys, s, id)
		l, err := b.sys.rdb.MemoryUsage(ctx, keys.DeviceAnomalies(s, id), 0).Result()
		if err == nil {
			list += l
			lists++
			entries += b.sys.rdb.LLen(ctx, keys.DeviceAnomalies(s, id)).Val()
		} else if err != redis.Nil {
			return nil, fmt.Errorf("memory usage: %w", err)
		}
		var d struct {
			Total int64 `json:"total_processed"`
		}
		if err := b.getJSON(ctx, b.sys.api+"/analyze?device_id="+id, &d); err == nil {
			events += d.Total
		}
	}
	if state == 0 {
		return nil, nil
	}
	w.EventsPerDevice = round(float64(events)/float64(n), 1)
	w.StateKeyBytes = round(float64(state)/float64(n), 1)
	w.WithAnomalyList = round(float64(lists)/float64(n), 3)
	if lists > 0 {
		w.AnomalyListBytes = round(float64(list)/float64(lists), 1)
		w.AnomaliesPerList = round(float64(entries)/float64(lists), 1)
	}
	if entries > 0 {
		w.BytesPerAnomaly = round(float64(list)/float64(entries), 1)
	}
	return w, nil
}
