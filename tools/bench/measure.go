package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/tools/loadgen"
)

// bench runs the scenarios against one system.
type bench struct {
	o    *options
	sys  *system
	rep  *Report
	logf func(string, ...any)
	// noNamed says why the 6-signal loads do not run; "" when they can.
	noNamed string
}

// fleet is what the api's GET /analyze says about the whole pipeline.
type fleet struct {
	TotalProcessed int64 `json:"total_processed"`
	Devices        int64 `json:"devices"`
	Lag            int64 `json:"lag"`
	Pending        int64 `json:"pending"`
}

func (f fleet) backlog() int64 { return f.Lag + f.Pending }

func (b *bench) fleet(ctx context.Context) (fleet, error) {
	var f fleet
	err := b.getJSON(ctx, b.sys.api+"/analyze", &f)
	return f, err
}

func (b *bench) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := b.sys.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// snapshot is the state of everything at one instant; the difference of
// two is what happened in between.
type snapshot struct {
	at        time.Time
	cpu       map[string]time.Duration // by process, "loadgen" is this process
	machine   loadgen.MachineTimes
	fleet     fleet
	fleetErr  error
	accepted  float64            // ingest's pulse_events_accepted_total; NaN if unknown
	e2e       []promtext.Bucket  // analyzers' pulse_end_to_end_latency_seconds, added up; nil if unknown
	cmdstats  map[string]cmdStat // Redis INFO commandstats; nil if unknown
	ingestM   promtext.Metrics   // ingest's /prometheus
	analyzerM []promtext.Metrics // each analyzer's /prometheus
	streams   streamStats
}

func (b *bench) snapshot(ctx context.Context) snapshot {
	s := snapshot{cpu: map[string]time.Duration{}, accepted: math.NaN()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(3)
	go func() {
		defer wg.Done()
		f, err := b.fleet(ctx)
		mu.Lock()
		s.fleet, s.fleetErr = f, err
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		m, err := promtext.Scrape(sctx, b.sys.http, b.sys.ingest+"/prometheus")
		if err == nil && m.Has("pulse_events_accepted_total") {
			mu.Lock()
			s.accepted = m.Sum("pulse_events_accepted_total", nil)
			s.ingestM = m
			mu.Unlock()
		}
		var e2e []promtext.Bucket
		var all []promtext.Metrics
		for _, a := range b.sys.analyzers {
			m, err := promtext.Scrape(sctx, b.sys.http, a+"/prometheus")
			if err != nil {
				return // one analyzer missing makes the sums wrong: none
			}
			e2e = loadgen.AddBuckets(e2e, m.Buckets("pulse_end_to_end_latency_seconds"))
			all = append(all, m)
		}
		mu.Lock()
		s.e2e, s.analyzerM = e2e, all
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		st := b.streamStats(ctx)
		cs := b.commandStats(ctx)
		mu.Lock()
		s.streams, s.cmdstats = st, cs
		mu.Unlock()
	}()
	for _, p := range b.sys.procs {
		if c, err := loadgen.ProcessCPU(p.pid); err == nil {
			s.cpu[p.name] = c
		}
	}
	if c, err := loadgen.ProcessCPU(os.Getpid()); err == nil {
		s.cpu["loadgen"] = c
	}
	s.machine, _ = loadgen.MachineCPU()
	wg.Wait()
	s.at = time.Now()
	return s
}

// streamStats is the size of the shards' streams and of Redis.
type streamStats struct {
	known      bool
	entries    int64
	bytes      int64
	usedMemory int64
}

func (b *bench) streamStats(ctx context.Context) streamStats {
	if b.sys.rdb == nil {
		return streamStats{}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys := shard.Keys{Prefix: b.sys.prefix}
	pipe := b.sys.rdb.Pipeline()
	lens := make([]*redis.IntCmd, b.sys.shards)
	sizes := make([]*redis.IntCmd, b.sys.shards)
	for i := range lens {
		lens[i] = pipe.XLen(ctx, keys.Stream(i))
		sizes[i] = pipe.MemoryUsage(ctx, keys.Stream(i))
	}
	info := pipe.Info(ctx, "memory")
	pipe.Exec(ctx) // a stream not yet created fails its MEMORY USAGE only
	st := streamStats{known: info.Err() == nil}
	for i := range lens {
		st.entries += lens[i].Val()
		st.bytes += sizes[i].Val()
	}
	st.usedMemory, _ = strconv.ParseInt(infoField(info.Val(), "used_memory"), 10, 64)
	return st
}

// cmdStat is one line of Redis's INFO commandstats.
type cmdStat struct{ calls, usec int64 }

func (b *bench) commandStats(ctx context.Context) map[string]cmdStat {
	if b.sys.rdb == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := b.sys.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil
	}
	return parseCommandStats(info)
}

// parseCommandStats reads lines like
// cmdstat_xadd:calls=10,usec=25,usec_per_call=2.50,rejected_calls=0,failed_calls=0.
func parseCommandStats(info string) map[string]cmdStat {
	out := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out
}

// monitor polls the backlog and memory every 250 ms during a load.
type monitor struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at        time.Time
	processed int64
	backlog   int64 // lag + pending
	lag       int64
	streams   streamStats
	rss       map[string]int64
}

func (b *bench) startMonitor(ctx context.Context) *monitor {
	m := &monitor{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			f, err := b.fleet(ctx)
			if err == nil {
				smp := sample{at: time.Now(), processed: f.TotalProcessed, backlog: f.backlog(), lag: f.Lag,
					streams: b.streamStats(ctx), rss: map[string]int64{}}
				for _, p := range b.sys.procs {
					if rss, _, err := loadgen.ProcessMemory(p.pid); err == nil {
						smp.rss[p.name] = rss
					}
				}
				m.mu.Lock()
				m.samples = append(m.samples, smp)
				m.mu.Unlock()
			}
			select {
			case <-m.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *monitor) finish() []sample {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.samples
}

// drain waits until the analyzers have processed target events in all
// (api total_processed) and nothing is pending, or timeout passes.
func (b *bench) drain(ctx context.Context, target int64, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for {
		f, err := b.fleet(ctx)
		if err == nil && f.TotalProcessed >= target && f.backlog() == 0 {
			return time.Since(start), true
		}
		if time.Since(start) > timeout || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// measureLoad runs send and measures around it: the load window (send's
// span), then the drain until the analyzers have caught up.
func (b *bench) measureLoad(ctx context.Context, sc *LoadResult, profile bool, send func(context.Context) (loadgen.Result, error)) error {
	if _, ok := b.drain(ctx, 0, b.o.drainTimeout); !ok {
		b.logf("  (the previous load is not drained: this one starts with a backlog)")
	}
	before := b.snapshot(ctx)
	if before.fleetErr != nil {
		return fmt.Errorf("%s: api: %w", sc.Name, before.fleetErr)
	}
	mon := b.startMonitor(ctx)
	var prof *profiler
	if profile {
		prof = b.startProfiles(ctx, sc.Name)
	}
	res, err := send(ctx)
	if err != nil {
		mon.finish()
		if prof != nil {
			prof.wait()
		}
		return err
	}
	atEnd := b.snapshot(ctx)
	accepted := res.Events
	if d := atEnd.accepted - before.accepted; !math.IsNaN(d) && int64(d) > accepted {
		accepted = int64(d) // also counts what was stored but answered too late for the client
	}
	drainTime, drained := b.drain(ctx, before.fleet.TotalProcessed+accepted, b.o.drainTimeout)
	if !drained {
		f, _ := b.fleet(ctx)
		b.logf("  not drained after %v: %d of %d events analyzed, backlog %d", b.o.drainTimeout,
			f.TotalProcessed-before.fleet.TotalProcessed, accepted, f.backlog())
		b.sys.troubled(b.logf)
	}
	after := b.snapshot(ctx)
	samples := mon.finish()
	if prof != nil {
		sc.Profiles = prof.wait()
	}
	sc.fill(res, before, atEnd, after, samples, drainTime, drained, accepted)
	return nil
}

// fill computes a load's figures from its snapshots.
func (sc *LoadResult) fill(res loadgen.Result, before, atEnd, after snapshot, samples []sample, drainTime time.Duration, drained bool, accepted int64) {
	load := atEnd.at.Sub(before.at).Seconds()
	total := after.at.Sub(before.at).Seconds()
	sc.Requests, sc.AcceptedRequests, sc.AcceptedEvents = res.Requests, res.Accepted, res.Events
	sc.Errors, sc.Missed = res.Errors, res.Missed
	if len(sc.Errors) == 0 {
		sc.Errors = nil
	}
	sc.LoadSeconds = round(res.Elapsed().Seconds(), 2)
	sc.AcceptedPerSec = round(res.EventsPerSecond(), 0)
	sc.RequestsPerSec = round(float64(res.Requests)/res.Elapsed().Seconds(), 0)
	sc.Latency = summarize(res.Latency)
	if sc.Kind == "open" {
		s := summarize(res.SendDelay)
		sc.SendDelay = &s
	}
	sc.PerSecondAccepted = res.PerSecond
	if !math.IsNaN(atEnd.accepted - before.accepted) {
		sc.IngestCounted = int64(atEnd.accepted - before.accepted)
	}
	processedLoad := atEnd.fleet.TotalProcessed - before.fleet.TotalProcessed
	processedAll := after.fleet.TotalProcessed - before.fleet.TotalProcessed
	sc.Analyzed = processedAll
	sc.AnalyzedPerSecDuringLoad = round(float64(processedLoad)/load, 0)
	sc.AnalyzedPerSecWithDrain = round(float64(processedAll)/total, 0)
	sc.BacklogAtEnd = atEnd.fleet.backlog()
	sc.DrainSeconds = round(drainTime.Seconds(), 2)
	sc.Drained = drained
	var prev *sample
	for i := range samples {
		s := &samples[i]
		sc.MaxBacklog = max(sc.MaxBacklog, s.backlog)
		sc.MaxLag = max(sc.MaxLag, s.lag)
		if s.streams.known {
			sc.Streams.MaxEntries = max(sc.Streams.MaxEntries, s.streams.entries)
			sc.Streams.MaxBytes = max(sc.Streams.MaxBytes, s.streams.bytes)
			sc.RedisUsedMemoryMax = max(sc.RedisUsedMemoryMax, s.streams.usedMemory)
		}
		for name, rss := range s.rss {
			if sc.MaxRSS == nil {
				sc.MaxRSS = map[string]int64{}
			}
			sc.MaxRSS[name] = max(sc.MaxRSS[name], rss)
		}
		if prev == nil || s.at.Sub(prev.at) >= time.Second {
			if prev != nil {
				rate := float64(s.processed-prev.processed) / s.at.Sub(prev.at).Seconds()
				sc.Timeline = append(sc.Timeline, TimelinePoint{
					Second: round(s.at.Sub(before.at).Seconds(), 1), AnalyzedPerSec: round(rate, 0),
					Backlog: s.backlog, StreamEntries: s.streams.entries,
				})
			}
			prev = s
		}
	}
	if after.streams.known {
		sc.Streams.Known = true
		sc.Streams.EntriesAfterDrain = after.streams.entries
		sc.Streams.BytesAfterDrain = after.streams.bytes
	}
	if after.e2e != nil && before.e2e != nil {
		d := loadgen.SubBuckets(after.e2e, before.e2e)
		if n := loadgen.BucketTotal(d); n > 0 {
			sc.EndToEnd = &EndToEnd{
				Events:      int64(n),
				P50Ms:       round(1000*loadgen.BucketQuantile(0.5, d), 2),
				P90Ms:       round(1000*loadgen.BucketQuantile(0.9, d), 2),
				P99Ms:       round(1000*loadgen.BucketQuantile(0.99, d), 2),
				Within50Ms:  round(loadgen.BucketFraction(d, 0.05), 5),
				Within10Ms:  round(loadgen.BucketFraction(d, 0.01), 5),
				Within250Ms: round(loadgen.BucketFraction(d, 0.25), 5),
			}
		}
	}
	// CPU: cores used during the load, and CPU time per event over load
	// and drain together (all the work the events caused).
	sc.CPU = map[string]ProcessCPU{}
	var ours time.Duration
	for name, c0 := range before.cpu {
		c1, ok1 := atEnd.cpu[name]
		c2, ok2 := after.cpu[name]
		if !ok1 || !ok2 {
			continue
		}
		pc := ProcessCPU{Cores: round((c1-c0).Seconds()/load, 2), Seconds: round((c2 - c0).Seconds(), 2)}
		if accepted > 0 {
			pc.MicrosPerEvent = round(float64((c2-c0).Microseconds())/float64(accepted), 2)
		}
		sc.CPU[name] = pc
		ours += c1 - c0
	}
	if all := (atEnd.machine.Total - before.machine.Total).Seconds(); all > 0 {
		busy := (atEnd.machine.Busy - before.machine.Busy).Seconds()
		irq := (atEnd.machine.IRQ - before.machine.IRQ).Seconds()
		sc.MachineBusyCores = round(busy/load, 2)
		sc.IRQCores = round(irq/load, 2)
		sc.StealCores = round((atEnd.machine.Steal-before.machine.Steal).Seconds()/load, 2)
		sc.OthersCores = round(math.Max(0, busy-irq-ours.Seconds())/load, 2)
	}
	sc.Internals = internals(before, after, accepted)
	sc.RedisCommands = commandDeltas(before.cmdstats, after.cmdstats, accepted)
}

// highestBucket returns the upper bound of the highest bucket holding an
// observation (+Inf: the highest finite bound, doubled), 0 without any.
func highestBucket(b []promtext.Bucket) float64 {
	var prev, bound float64
	for i, bk := range b {
		if bk.Count > prev {
			bound = bk.UpperBound
			if math.IsInf(bound, 1) && i > 0 {
				bound = 2 * b[i-1].UpperBound
			}
		}
		prev = bk.Count
	}
	return bound
}

// commandDeltas returns the Redis commands run between two snapshots,
// the most expensive first.
func commandDeltas(before, after map[string]cmdStat, events int64) []RedisCommand {
	if before == nil || after == nil {
		return nil
	}
	var total int64
	var out []RedisCommand
	for name, a := range after {
		b := before[name]
		calls, usec := a.calls-b.calls, a.usec-b.usec
		if calls <= 0 {
			continue
		}
		rc := RedisCommand{Command: name, Calls: calls, Usec: usec, UsecPerCall: round(float64(usec)/float64(calls), 2)}
		if events > 0 {
			rc.PerThousandEvents = round(1000*float64(calls)/float64(events), 2)
			rc.UsecPerEvent = round(float64(usec)/float64(events), 2)
		}
		if !strings.HasPrefix(name, "eval") {
			total += usec // script time includes its commands' time
		}
		out = append(out, rc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Usec > out[j].Usec })
	for i := range out {
		if total > 0 {
			out[i].Share = round(float64(out[i].Usec)/float64(total), 3)
		}
	}
	return out
}

// internals reads, from the services' own metrics over load and drain,
// how the work was batched and which Redis calls it took.
func internals(before, after snapshot, events int64) *Internals {
	if after.ingestM == nil || before.ingestM == nil {
		return nil
	}
	delta := func(a, b promtext.Metrics, name string, want map[string]string) float64 {
		return a.Sum(name, want) - b.Sum(name, want)
	}
	mean := func(sum, count float64) float64 {
		if count <= 0 {
			return 0
		}
		return sum / count
	}
	in := &Internals{RedisCalls: map[string]map[string]RedisCalls{}}
	pipe := map[string]string{"stage": "ingest_pipeline"}
	req := map[string]string{"stage": "ingest_request"}
	in.IngestEventsPerPipeline = round(mean(delta(after.ingestM, before.ingestM, "pulse_batch_size_sum", pipe),
		delta(after.ingestM, before.ingestM, "pulse_batch_size_count", pipe)), 1)
	in.IngestEventsPerRequest = round(mean(delta(after.ingestM, before.ingestM, "pulse_batch_size_sum", req),
		delta(after.ingestM, before.ingestM, "pulse_batch_size_count", req)), 1)
	calls := func(service string, a, b promtext.Metrics) {
		ops := map[string]bool{}
		for _, smp := range a {
			if smp.Name == "pulse_redis_duration_seconds_count" {
				ops[smp.Labels["op"]] = true
			}
		}
		for op := range ops {
			want := map[string]string{"op": op}
			n := delta(a, b, "pulse_redis_duration_seconds_count", want)
			if n <= 0 {
				continue
			}
			if in.RedisCalls[service] == nil {
				in.RedisCalls[service] = map[string]RedisCalls{}
			}
			rc := in.RedisCalls[service][op]
			rc.Calls += int64(n)
			rc.sumSeconds += delta(a, b, "pulse_redis_duration_seconds_sum", want)
			rc.buckets = loadgen.AddBuckets(rc.buckets, loadgen.SubBuckets(
				a.BucketsWhere("pulse_redis_duration_seconds", want), b.BucketsWhere("pulse_redis_duration_seconds", want)))
			in.RedisCalls[service][op] = rc
		}
	}
	calls("ingest", after.ingestM, before.ingestM)
	if len(after.analyzerM) == len(before.analyzerM) {
		var bsum, bcount, dsum, dcount float64
		var durations []promtext.Bucket
		an := map[string]string{"stage": "analyzer"}
		for i := range after.analyzerM {
			a, b := after.analyzerM[i], before.analyzerM[i]
			bsum += delta(a, b, "pulse_batch_size_sum", an)
			bcount += delta(a, b, "pulse_batch_size_count", an)
			dsum += delta(a, b, "pulse_analyzer_batch_duration_seconds_sum", nil)
			dcount += delta(a, b, "pulse_analyzer_batch_duration_seconds_count", nil)
			durations = loadgen.AddBuckets(durations, loadgen.SubBuckets(
				a.Buckets("pulse_analyzer_batch_duration_seconds"), b.Buckets("pulse_analyzer_batch_duration_seconds")))
			calls("analyzers", a, b)
		}
		in.AnalyzerEventsPerBatch = round(mean(bsum, bcount), 1)
		in.AnalyzerBatchMs = round(1000*mean(dsum, dcount), 2)
		in.AnalyzerBatchP99Ms = round(1000*loadgen.BucketQuantile(0.99, durations), 2)
		in.AnalyzerBatchMaxBucketMs = round(1000*highestBucket(durations), 1)
	}
	for _, ops := range in.RedisCalls {
		for op, rc := range ops {
			rc.MeanMs = round(1000*rc.sumSeconds/float64(rc.Calls), 3)
			rc.P99Ms = round(1000*loadgen.BucketQuantile(0.99, rc.buckets), 3)
			rc.MaxBucketMs = round(1000*highestBucket(rc.buckets), 1)
			if events > 0 {
				rc.PerThousandEvents = round(1000*float64(rc.Calls)/float64(events), 2)
			}
			ops[op] = rc
		}
	}
	return in
}

func summarize(h *loadgen.Histogram) Latency {
	ms := func(d time.Duration) float64 { return round(float64(d)/1e6, 3) }
	return Latency{
		Count: h.Count(), MeanMs: ms(h.Mean()),
		P50Ms: ms(h.Quantile(0.5)), P90Ms: ms(h.Quantile(0.9)), P95Ms: ms(h.Quantile(0.95)),
		P99Ms: ms(h.Quantile(0.99)), P999Ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()),
	}
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
