// Package bench is pulse-bench: it measures the whole pipeline on one machine: it builds
// and starts its own redis-server, ingest, two analyzers and the api on free
// loopback ports (or targets URLs given with -ingest and -api), drives
// ingest with tools/loadgen, and reports throughput, latency, analysis
// delay, lag, CPU per process, Redis's own XADD ceiling and memory per
// device, as JSON and in docs/BENCHMARKS.md:
//
//	go run ./tools/cmd/pulse-bench -out docs/bench/latest.json -md docs/BENCHMARKS.md
//
// Scenarios (-scenarios, in this order):
//
//	xadd    redis-benchmark's pipelined XADD rate on the same Redis: the ceiling
//	open    open loop, single-event POSTs at each -rates rate (default 1000,5000 events/s),
//	        latency from each request's scheduled send time
//	ceiling closed loop like single, against a bare net/http handler answering
//	        202 (this executable again, in a process of its own): the HTTP ceiling
//	single  closed loop, single-event POSTs, maximum throughput
//	single-6  single with 6 signals per event (cpu, rps and 4 named) instead
//	        of 2, on devices of their own: events/s and signals/s
//	batch   closed loop, POSTs of -batch events (1000), maximum throughput
//	batch-6 batch with 6 signals per event
//	memory  100,000 new devices × 3 events: Redis bytes per device, analyzer RSS
//	memory-signals  -signal-devices new devices with 2 signals, then as many
//	        with 6, warm (full windows, a day of half-hour buckets): Redis
//	        bytes per extra signal
//
// single, batch and the open loads send the events they always sent, 2
// signals each; -baseline compares them with a report of the code before
// named metrics.
//
// Every run is bounded in requests and time; after each load the harness
// waits (at most -drain-timeout) for the analyzers to catch up, and reports
// that drain time. A default run takes about 2 minutes on a quiet machine
// (plus the build), at most about 10 when the analyzers cannot catch up;
// -long makes each load 60 s, as the targets require.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// options are the command line's flags.
type options struct {
	ingest, api      string
	analyzers        []string
	ingestAdmin      string
	analyzerAdmins   []string
	apiAdmin         string
	redisAddr        string
	prefix           string
	shards           int
	env              []string
	scenarios        []string
	rates            []int
	duration         time.Duration
	concurrency      int
	batchConcurrency int
	batch            int
	devices          int
	memDevices       int
	signalDevices    int
	window           int
	baseline         string
	drainTimeout     time.Duration
	out, md          string
	label            string
	pprof, perf      bool
	allowRemote      bool
	keep             bool
	src              string
	from             string
	args             []string
}

var allScenarios = []string{"xadd", "open", "ceiling", "single", "single-6", "batch", "batch-6", "memory", "memory-signals"}

// defaultWindow is the services' WINDOW_SIZE unless -env sets one.
const defaultWindow = 50

func parseFlags(args []string, stdout io.Writer) (*options, error) {
	fs := flag.NewFlagSet("pulse-bench", flag.ContinueOnError)
	fs.SetOutput(stdout)
	o := &options{args: args}
	var analyzers, analyzerAdmins, env, scenarios, rates string
	var long bool
	fs.StringVar(&o.ingest, "ingest", "", "ingest base URL of a running pipeline (default: start one)")
	fs.StringVar(&o.api, "api", "", "api base URL of a running pipeline (with -ingest)")
	fs.StringVar(&analyzers, "analyzers", "", "analyzers' base URLs (HTTP_ADDR), comma-separated, for their /prometheus (with -ingest)")
	fs.StringVar(&analyzerAdmins, "analyzer-admins", "", "analyzers' ADMIN_ADDR base URLs, comma-separated, for -pprof (with -ingest)")
	fs.StringVar(&o.ingestAdmin, "ingest-admin", "", "ingest's ADMIN_ADDR base URL, for -pprof (with -ingest)")
	fs.StringVar(&o.apiAdmin, "api-admin", "", "the api's ADMIN_ADDR base URL, for -pprof (with -ingest)")
	fs.StringVar(&o.redisAddr, "redis", "", "Redis host:port of a running pipeline, for the xadd and memory scenarios (with -ingest)")
	fs.StringVar(&o.prefix, "prefix", "pulse", "KEY_PREFIX of a running pipeline (with -ingest)")
	fs.IntVar(&o.shards, "shards", 16, "SHARDS of the pipeline")
	fs.StringVar(&env, "env", "", "extra environment of the started services, e.g. READ_COUNT=1000,LOG_LEVEL=info")
	fs.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated: "+strings.Join(allScenarios, ","))
	fs.StringVar(&rates, "rates", "1000,5000", "open-loop rates, events per second, comma-separated")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "length of each open- and closed-loop load")
	fs.BoolVar(&long, "long", false, "60 s loads (the targets' sustained runs); overrides -duration")
	fs.IntVar(&o.concurrency, "concurrency", 64, "closed-loop connections for single-event POSTs (and the HTTP ceiling)")
	fs.IntVar(&o.batchConcurrency, "batch-concurrency", 4, "closed-loop connections for batch POSTs")
	fs.IntVar(&o.batch, "batch", 1000, "events per batch POST (at most ingest's MAX_BATCH)")
	fs.IntVar(&o.devices, "devices", 10000, "distinct devices of the load scenarios")
	fs.IntVar(&o.memDevices, "mem-devices", 100000, "new devices of the memory scenario (3 events each)")
	fs.IntVar(&o.signalDevices, "signal-devices", 5000, "new devices of each group (2 signals, 6 signals) of the memory-signals scenario")
	fs.IntVar(&o.window, "window", 0, "WINDOW_SIZE of the pipeline (default: WINDOW_SIZE of -env, else the services' default, 50)")
	fs.StringVar(&o.baseline, "baseline", "", "JSON report of the code before named metrics, to compare the two-signal loads with (e.g. one written with -src)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", time.Minute, "longest wait after a load for the analyzers to catch up")
	fs.StringVar(&o.out, "out", "", "JSON report to write (default docs/bench/<UTC time>.json; \"-\": none)")
	fs.StringVar(&o.md, "md", "docs/BENCHMARKS.md", "Markdown file whose generated section to update (\"\": none)")
	fs.StringVar(&o.label, "label", "", "name of this run in the report's history, e.g. before or after")
	fs.BoolVar(&o.pprof, "pprof", false, "fetch a 10 s CPU profile from each service's /debug/pprof/profile (on its ADMIN_ADDR) during the closed-loop loads")
	fs.BoolVar(&o.perf, "perf", false, "record each process (Linux perf, cpu-clock) for 10 s during the closed-loop loads")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow URLs that are not on the loopback interface")
	fs.StringVar(&o.src, "src", "", "build the services from this checkout instead (its own go.work), e.g. an older commit: git worktree add /tmp/before <commit>")
	fs.StringVar(&o.from, "from", "", "run nothing: rewrite the generated section of -md from this JSON report (no history row)")
	fs.BoolVar(&o.keep, "keep", false, "keep the started services' logs and binaries (their folder is printed)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if long {
		o.duration = time.Minute
	}
	o.ingest, o.api = strings.TrimRight(o.ingest, "/"), strings.TrimRight(o.api, "/")
	o.ingestAdmin, o.apiAdmin = strings.TrimRight(o.ingestAdmin, "/"), strings.TrimRight(o.apiAdmin, "/")
	o.analyzers = splitList(analyzers)
	o.analyzerAdmins = splitList(analyzerAdmins)
	o.env = splitList(env)
	o.scenarios = splitList(scenarios)
	for _, s := range o.scenarios {
		if !contains(allScenarios, s) {
			return nil, fmt.Errorf("-scenarios: unknown %q (want some of %s)", s, strings.Join(allScenarios, ","))
		}
	}
	for _, r := range splitList(rates) {
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-rates: %q is not a positive whole number", r)
		}
		o.rates = append(o.rates, n)
	}
	for _, e := range o.env {
		name, v, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("-env: %q is not NAME=value", e)
		}
		if name == "WINDOW_SIZE" && o.window == 0 {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("-env: WINDOW_SIZE=%q is not a positive whole number", v)
			}
			o.window = n
		}
	}
	if o.window == 0 {
		o.window = defaultWindow
	}
	switch {
	case o.duration < 5*time.Second:
		return nil, errors.New("-duration: at least 5s")
	case o.concurrency < 1 || o.batchConcurrency < 1:
		return nil, errors.New("-concurrency and -batch-concurrency: at least 1")
	case o.batch < 2:
		return nil, errors.New("-batch: at least 2")
	case o.devices < 1 || o.memDevices < 1 || o.signalDevices < 1:
		return nil, errors.New("-devices, -mem-devices and -signal-devices: at least 1")
	case o.window < 1:
		return nil, errors.New("-window: at least 1")
	case (o.ingest == "") != (o.api == ""):
		return nil, errors.New("-ingest and -api go together")
	case o.ingest != "" && o.src != "":
		return nil, errors.New("-src builds services to start: not with -ingest")
	case o.ingest == "" && (len(o.analyzers) > 0 || len(o.analyzerAdmins) > 0 || o.redisAddr != "" || o.ingestAdmin != "" || o.apiAdmin != ""):
		return nil, errors.New("-analyzers, -analyzer-admins, -ingest-admin, -api-admin and -redis need -ingest and -api")
	}
	for _, u := range append(append([]string{o.ingest, o.api, o.ingestAdmin, o.apiAdmin}, o.analyzers...), o.analyzerAdmins...) {
		if u == "" {
			continue
		}
		if err := checkURL(u, o.allowRemote); err != nil {
			return nil, err
		}
	}
	if o.redisAddr != "" && !o.allowRemote && !loopback(hostOf(o.redisAddr)) {
		return nil, fmt.Errorf("-redis %s is not a loopback address (-allow-remote to insist)", o.redisAddr)
	}
	if o.out == "" {
		o.out = "docs/bench/" + time.Now().UTC().Format("20060102-150405") + ".json"
	}
	if o.out == "-" {
		o.out = ""
	}
	return o, nil
}

// checkURL refuses URLs other than http(s) and, unless allowed, hosts off
// the loopback interface: a load test pointed at production by mistake
// is an outage.
func checkURL(s string, allowRemote bool) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) base URL", s)
	}
	if !allowRemote && !loopback(u.Hostname()) {
		return fmt.Errorf("%s is not on the loopback interface (-allow-remote to insist)", s)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, strings.TrimRight(f, "/"))
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// Run parses the command line args, runs the benchmark and reports on
// stdout.
func Run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 2 && args[0] == serveCeilingFlag {
		return serveCeiling(ctx, args[1])
	}
	o, err := parseFlags(args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	if o.from != "" {
		rep, err := readReport(o.from)
		if err != nil {
			return err
		}
		if o.baseline != "" {
			if rep.Baseline, err = readBaseline(o.baseline); err != nil {
				return err
			}
		}
		rep.evaluate()
		if err := rep.updateMarkdown(o.md, o.from, false); err != nil {
			return err
		}
		logf("updated %s from %s", o.md, o.from)
		return nil
	}
	rep := newReport(o)
	if o.baseline != "" {
		// Read first: a wrong path fails now, not after the loads.
		if rep.Baseline, err = readBaseline(o.baseline); err != nil {
			return err
		}
	}
	logf("machine: %d CPUs (%s), %s RAM, load average %s", rep.Machine.CPUs, rep.Machine.Model, bytesIEC(rep.Machine.MemoryBytes), rep.Machine.LoadAverage)

	var sys *system
	if o.ingest == "" {
		logf("building the services and starting redis-server, ingest, 2 analyzers and the api…")
		c, err := startCluster(ctx, o, logf)
		if err != nil {
			return err
		}
		defer c.stop(logf)
		sys = c.system()
	} else {
		sys, err = givenSystem(o)
		if err != nil {
			return err
		}
	}
	defer sys.close()
	rep.describe(ctx, sys)

	b := &bench{o: o, sys: sys, rep: rep, logf: logf}
	if err := b.runScenarios(ctx); err != nil {
		return err
	}
	rep.evaluate()
	if o.out != "" {
		if err := rep.writeJSON(o.out); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	if o.md != "" {
		if err := rep.updateMarkdown(o.md, o.out, true); err != nil {
			return err
		}
		logf("updated %s", o.md)
	}
	rep.printSummary(stdout)
	return nil
}
