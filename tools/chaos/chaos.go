// Package chaos runs the whole pipeline — redis-server with AOF, ingest,
// analyzers and the api, as real processes on loopback — under a steady
// load while it SIGKILLs and restarts analyzers, ingest and Redis, then
// checks what reached the results against what ingest acknowledged:
//
//   - every event acknowledged (202) is analyzed exactly once, when Redis
//     fsyncs every write (appendfsync always); with appendfsync everysec,
//     the events lost are counted and stay within the bound (the events
//     acknowledged in the last 2 s before each Redis kill);
//   - an event whose request failed (connection broken, 5xx, timeout) is
//     analyzed at most once: the sender never sends an event twice, so
//     acked ≤ analyzed ≤ acked + uncertain holds for every device;
//   - the pipeline drains: no lag, nothing pending, every shard leased to
//     a live analyzer, nothing in the dead-letter streams;
//   - every service recovers by itself: none exits on its own, each is
//     ready at the end and ingest accepts again;
//   - when Redis is wiped (FLUSHALL, an empty restart: WipeKinds), what
//     it held is legitimately gone and counted apart, and the bounds
//     above hold for every event acknowledged after the latest wipe.
//
// The short form runs inside make test (tools/e2e/chaos_test.go), the
// long form is make chaos (tools/cmd/pulse-chaos).
package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/backoff"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/shard"
)

// Fsync modes of Redis's AOF.
const (
	FsyncAlways   = "always"
	FsyncEverysec = "everysec"
)

// EverysecWindow is how much of what was acknowledged before a Redis crash
// appendfsync everysec may lose: Redis fsyncs the AOF once a second, and
// while an fsync is still running it postpones writing the AOF buffer for
// up to 2 s more. A SIGKILL of the process loses only what was not yet
// written (the page cache survives it); a power loss may lose all of it.
const EverysecWindow = 2 * time.Second

// Options configure a run. Zero values take the defaults of the short
// form (see withDefaults).
type Options struct {
	BinDir  string // holds the ingest, analyzer and api binaries
	WorkDir string // logs and Redis data; "" for a temporary folder removed after the run
	Fsync   string // FsyncAlways or FsyncEverysec

	Shards    int // SHARDS
	Analyzers int // analyzers running at once
	Ingests   int // ingest processes; the senders spread requests over them

	Devices   int           // distinct devices
	Senders   int           // concurrent clients
	Batch     int           // events per request
	Rate      float64       // events per second, all senders (0: as fast as they go)
	MaxEvents int64         // at most this many events are sent
	Load      time.Duration // how long the load runs

	FaultEvery time.Duration // time between faults
	Quiet      time.Duration // no fault in the last Quiet of the load
	Kinds      []Kind        // the faults to cycle through
	MinDown    time.Duration // a killed process is started again after
	MaxDown    time.Duration // a pause in [MinDown, MaxDown)

	Drain time.Duration // how long the pipeline may take to drain after the load
	Seed  uint64
	// Env is added to every service's environment (after the driver's).
	Env []string
	// Logf reports progress; nil: silent.
	Logf func(format string, args ...any)
}

// name is how a run is called in the table: its fsync mode, and whether
// Redis is wiped.
func (o Options) name() string {
	for _, k := range o.Kinds {
		if k.wipes() {
			return o.Fsync + ", Redis wiped"
		}
	}
	return o.Fsync
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Fsync == "" {
		o.Fsync = FsyncAlways
	}
	def(&o.Shards, 4)
	def(&o.Analyzers, 2)
	def(&o.Ingests, 1)
	def(&o.Devices, 200)
	def(&o.Senders, 4)
	def(&o.Batch, 20)
	if o.MaxEvents <= 0 {
		o.MaxEvents = 1_000_000
	}
	defDur(&o.Load, 20*time.Second)
	defDur(&o.FaultEvery, 2500*time.Millisecond)
	defDur(&o.Quiet, 3*time.Second)
	if o.Kinds == nil {
		o.Kinds = Kinds
	}
	defDur(&o.MinDown, 200*time.Millisecond)
	defDur(&o.MaxDown, 1500*time.Millisecond)
	defDur(&o.Drain, 90*time.Second)
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// keyPrefix is the KEY_PREFIX of every run; each run has its own Redis.
const keyPrefix = "chaos"

// pipeline is the set of processes of one run.
type pipeline struct {
	o      Options
	logDir string
	env    []string // every service's

	redis    *proctest.Proc
	redisDir string // its data
	ingests  []*proctest.Proc
	api      *proctest.Proc

	mu        sync.Mutex
	analyzers []*proctest.Proc // the live set, one slot per analyzer
	all       []*proctest.Proc // every process ever started, for exits and logs
	names     int
}

func (p *pipeline) add(pr *proctest.Proc) {
	p.mu.Lock()
	p.all = append(p.all, pr)
	p.mu.Unlock()
}

func (p *pipeline) service(kind, name string, env ...string) (*proctest.Proc, error) {
	pr, err := newService(p.o.BinDir, p.logDir, kind, name, append(append([]string(nil), p.env...), env...))
	if err != nil {
		return nil, err
	}
	p.add(pr)
	return pr, nil
}

// newAnalyzer returns an analyzer under a name never used before.
func (p *pipeline) newAnalyzer() (*proctest.Proc, error) {
	p.mu.Lock()
	p.names++
	name := "analyzer-" + strconv.Itoa(p.names)
	p.mu.Unlock()
	return p.service("analyzer", name, "CONSUMER_NAME="+name)
}

func (p *pipeline) setAnalyzer(i int, a *proctest.Proc) {
	p.mu.Lock()
	p.analyzers[i] = a
	p.mu.Unlock()
}

func (p *pipeline) liveAnalyzers() []*proctest.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*proctest.Proc(nil), p.analyzers...)
}

func (p *pipeline) processes() []*proctest.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*proctest.Proc(nil), p.all...)
}

func (p *pipeline) stopAll() {
	for _, pr := range p.processes() {
		pr.Kill()
	}
}

// client returns a client of the pipeline's Redis that never retries: a
// fault shows at once.
func (p *pipeline) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.redis.Addr, MaxRetries: -1})
}

// command runs cmd on a client of its own, within timeout.
func (p *pipeline) command(ctx context.Context, timeout time.Duration, cmd func(context.Context, *redis.Client) error) error {
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return cmd(ctx, c)
}

// flushAll empties Redis (FLUSHALL, synchronous).
func (p *pipeline) flushAll(ctx context.Context) error {
	return p.command(ctx, 5*time.Second, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
}

// waitAnalyzing waits until every shard has analyzed events since Redis
// was wiped (its processed counter, wiped with the rest, is above 0), up
// to timeout, and returns how long that took; -1 and no error when ctx
// (the load) ends first: without new events nothing would be analyzed
// (what was acknowledged is then checked by the verification).
func (p *pipeline) waitAnalyzing(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	c := p.client()
	defer c.Close()
	keys := shard.Keys{Prefix: keyPrefix}
	start := time.Now()
	var idle []int
	for time.Since(start) < timeout {
		idle = idle[:0]
		for s := 0; s < p.o.Shards; s++ {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			n, err := c.HGet(cctx, keys.Stats(s), "processed").Int64()
			cancel()
			if err != nil || n == 0 {
				idle = append(idle, s)
			}
		}
		if len(idle) == 0 {
			return time.Since(start), nil
		}
		backoff.Sleep(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return -1, nil
		}
	}
	return 0, fmt.Errorf("shards %v analyzed nothing within %v of the wipe", idle, timeout)
}

// rewriteAOF starts an AOF rewrite in the background.
func (p *pipeline) rewriteAOF(ctx context.Context) error {
	return p.command(ctx, 2*time.Second, func(ctx context.Context, c *redis.Client) error { return c.BgRewriteAOF(ctx).Err() })
}

// Run starts the pipeline, loads it while injecting faults, lets it drain
// and checks the results. The error is for a run that could not be made
// (a binary missing, a process that would not start); what the run found
// is in Report.Problems.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	if o.Fsync != FsyncAlways && o.Fsync != FsyncEverysec {
		return nil, fmt.Errorf("fsync %q: want %s or %s", o.Fsync, FsyncAlways, FsyncEverysec)
	}
	for _, b := range []string{"ingest", "analyzer", "api"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("binary %s: %w (make build)", b, err)
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	work := o.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "pulse-chaos-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	dataDir := filepath.Join(work, "redis")
	p := &pipeline{o: o, logDir: filepath.Join(work, "logs"), redisDir: dataDir}
	for _, d := range []string{p.logDir, dataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer p.stopAll()

	redisAddr, err := proctest.FreeAddr()
	if err != nil {
		return nil, err
	}
	p.redis = newRedis(p.logDir, dataDir, redisAddr, o.Fsync)
	p.add(p.redis)
	p.env = append([]string{
		"REDIS_ADDR=" + redisAddr, "KEY_PREFIX=" + keyPrefix, "SHARDS=" + strconv.Itoa(o.Shards),
		"LEASE_TTL=1s", "READ_COUNT=100", "LOG_LEVEL=info",
	}, o.Env...)
	if err := p.redis.Start(ctx); err != nil {
		return nil, err
	}
	for i := 0; i < o.Ingests; i++ {
		in, err := p.service("ingest", "ingest-"+strconv.Itoa(i+1))
		if err != nil {
			return nil, err
		}
		p.ingests = append(p.ingests, in)
	}
	for i := 0; i < o.Analyzers; i++ {
		a, err := p.newAnalyzer()
		if err != nil {
			return nil, err
		}
		p.analyzers = append(p.analyzers, a)
	}
	if p.api, err = p.service("api", "api"); err != nil {
		return nil, err
	}
	for _, pr := range p.processes()[1:] {
		if err := pr.Start(ctx); err != nil {
			return nil, err
		}
	}
	o.Logf("chaos %s: redis %s, %d ingest, %d analyzers, api %s; logs in %s",
		o.Fsync, redisAddr, len(p.ingests), len(p.analyzers), p.api.Addr, p.logDir)

	rep := &Report{Name: o.name(), Fsync: o.Fsync, Load: o.Load, LogDir: p.logDir}
	tr, faults := p.load(ctx, o)
	rep.Faults = faults
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	p.verify(ctx, o, tr, rep)
	return rep, nil
}

// load runs the senders for o.Load while the injector works through the
// schedule; it returns once both are done.
func (p *pipeline) load(ctx context.Context, o Options) (*tracker, []Fault) {
	devices := make([]string, o.Devices, o.Devices+len(p.ingests))
	baseRPS := make([]float64, o.Devices)
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	for i := range devices {
		devices[i] = fmt.Sprintf("chaos-%04d", i)
		baseRPS[i] = 80 + 40*rng.Float64()
	}
	for i := range p.ingests {
		devices = append(devices, fmt.Sprintf("probe-%d", i+1)) // see probe
	}
	start := time.Now()
	tr := newTracker(devices, start)

	loadCtx, stop := context.WithTimeout(ctx, o.Load)
	defer stop()
	var budget atomic.Int64
	budget.Store(o.MaxEvents)
	transport := &http.Transport{MaxIdleConnsPerHost: o.Senders, IdleConnTimeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	urls := make([]string, len(p.ingests))
	for i, in := range p.ingests {
		urls[i] = "http://" + in.Addr
	}
	var wg sync.WaitGroup
	for i := 0; i < o.Senders; i++ {
		s := &sender{
			t:        tr,
			n:        o.Devices,
			urls:     urls,
			first:    i,
			batch:    o.Batch,
			perSec:   o.Rate / float64(o.Senders),
			budget:   &budget,
			client:   &http.Client{Transport: transport, Timeout: 10 * time.Second},
			rng:      rand.New(rand.NewPCG(o.Seed, uint64(100+i))),
			baseRPS:  baseRPS,
			errPause: 100 * time.Millisecond,
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx, start.Add(o.Load)) }()
	}
	in := &injector{p: p, tr: tr, rng: rand.New(rand.NewPCG(o.Seed, 2)), minDown: o.MinDown, maxDown: o.MaxDown, logf: o.Logf}
	var faults []Fault
	wg.Add(1)
	go func() {
		defer wg.Done()
		faults = in.run(loadCtx, start, schedule(o.Load, o.FaultEvery, o.Quiet, o.Kinds))
	}()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			ack, unsure := tr.totals()
			o.Logf("load done after %v: %d events sent, %d acknowledged, %d uncertain, %d refused",
				time.Since(start).Round(time.Millisecond), tr.sent.Load(), ack, unsure, tr.refused.Load())
			return tr, faults
		case <-progress.C:
			ack, unsure := tr.totals()
			o.Logf("load %5.1fs: %d sent, %d acknowledged, %d uncertain", time.Since(start).Seconds(), tr.sent.Load(), ack, unsure)
		}
	}
}

// getJSON GETs url into v (when 200) and returns the status.
func getJSON(ctx context.Context, c *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}
