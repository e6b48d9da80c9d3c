package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/pulse-iot/pulse/internal/promtext"
)

// Report is the JSON report of one run.
type Report struct {
	Label     string        `json:"label,omitempty"`
	Time      string        `json:"time"`
	Command   string        `json:"command"`
	Commit    string        `json:"commit,omitempty"`
	Dirty     bool          `json:"dirty,omitempty"`
	Source    string        `json:"source,omitempty"` // -src: where the services were built from
	Machine   Machine       `json:"machine"`
	Setup     Setup         `json:"setup"`
	Xadd      *Xadd         `json:"xadd,omitempty"`
	Scenarios []*LoadResult `json:"scenarios"`
	Memory    *Memory       `json:"memory,omitempty"`
	// SignalMemory is the memory-signals scenario.
	SignalMemory *SignalMemory `json:"signal_memory,omitempty"`
	// Baseline is the run the two-signal loads are compared with
	// (-baseline), kept here so that -from renders the same targets.
	Baseline *Baseline `json:"baseline,omitempty"`
	Targets  []Target  `json:"targets"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs         int    `json:"cpus"`
	Model        string `json:"model"`
	MemoryBytes  int64  `json:"memory_bytes"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version,omitempty"`
	LoadAverage  string `json:"load_average_at_start"`
}

// Setup is what ran and how.
type Setup struct {
	Mode        string   `json:"mode"` // "own pipeline" or "given URLs"
	Processes   []string `json:"processes,omitempty"`
	Shards      int      `json:"shards"`
	ServiceEnv  []string `json:"service_env,omitempty"`
	LoadSeconds float64  `json:"load_seconds"`
	Devices     int      `json:"devices"`
}

// Xadd is Redis's own pipelined XADD rate.
type Xadd struct {
	Command  string      `json:"command"`
	Requests int         `json:"requests"`
	Pipeline int         `json:"pipeline"`
	Clients  int         `json:"clients"`
	Runs     int         `json:"runs"`
	Shapes   []XaddShape `json:"shapes"`
}

// XaddShape is one entry shape's rate, per run and median.
type XaddShape struct {
	Command   string    `json:"command"`
	PerSecond []float64 `json:"per_second"`
	Median    float64   `json:"median"`
}

// LoadResult is one load scenario.
type LoadResult struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // closed or open
	// HTTPCeiling: the load went to a bare net/http 202 handler, not to
	// the pipeline; its analysis figures are empty.
	HTTPCeiling bool   `json:"http_ceiling,omitempty"`
	Description string `json:"description"`
	BatchSize   int    `json:"batch_size"`
	// SignalsPerEvent: values in each event, cpu and rps and the named
	// ones (2 in reports from before named metrics).
	SignalsPerEvent int `json:"signals_per_event,omitempty"`
	Devices         int `json:"devices"`
	Concurrency     int `json:"concurrency,omitempty"`
	RateTarget      int `json:"rate_target,omitempty"`
	MaxInFlight     int `json:"max_in_flight,omitempty"`

	LoadSeconds      float64          `json:"load_seconds"`
	Requests         int64            `json:"requests"`
	AcceptedRequests int64            `json:"accepted_requests"`
	AcceptedEvents   int64            `json:"accepted_events"`
	IngestCounted    int64            `json:"ingest_counted_events"` // pulse_events_accepted_total delta
	Errors           map[string]int64 `json:"errors,omitempty"`
	Missed           int64            `json:"missed,omitempty"`
	RequestsPerSec   float64          `json:"requests_per_sec"`
	AcceptedPerSec   float64          `json:"accepted_events_per_sec"`
	Latency          Latency          `json:"ingest_latency"`
	SendDelay        *Latency         `json:"send_delay,omitempty"`

	Analyzed                 int64     `json:"analyzed_events"`
	AnalyzedPerSecDuringLoad float64   `json:"analyzed_per_sec_during_load"`
	AnalyzedPerSecWithDrain  float64   `json:"analyzed_per_sec_with_drain"`
	BacklogAtEnd             int64     `json:"backlog_at_end_of_load"`
	MaxBacklog               int64     `json:"max_backlog"`
	MaxLag                   int64     `json:"max_lag"`
	DrainSeconds             float64   `json:"drain_seconds"`
	Drained                  bool      `json:"drained"`
	EndToEnd                 *EndToEnd `json:"end_to_end,omitempty"`

	CPU                map[string]ProcessCPU `json:"cpu,omitempty"`
	MachineBusyCores   float64               `json:"machine_busy_cores"`
	IRQCores           float64               `json:"irq_cores"`    // interrupts, softirq: loopback TCP
	StealCores         float64               `json:"steal_cores"`  // taken by the hypervisor
	OthersCores        float64               `json:"others_cores"` // processes not ours
	Internals          *Internals            `json:"internals,omitempty"`
	RedisCommands      []RedisCommand        `json:"redis_commands,omitempty"`
	Streams            Streams               `json:"streams"`
	RedisUsedMemoryMax int64                 `json:"redis_used_memory_max,omitempty"`
	MaxRSS             map[string]int64      `json:"max_rss,omitempty"`
	PerSecondAccepted  []int64               `json:"per_second_accepted"`
	Timeline           []TimelinePoint       `json:"timeline,omitempty"`
	Profiles           []string              `json:"profiles,omitempty"`
	// PipelineCPU is derived from CPU and Analyzed (also for older reports).
	PipelineCPU *PipelineCPU `json:"pipeline_cpu,omitempty"`
	// Derived from the event rates and SignalsPerEvent.
	AcceptedSignalsPerSec float64 `json:"accepted_signals_per_sec,omitempty"`
	AnalyzedSignalsPerSec float64 `json:"analyzed_signals_per_sec_during_load,omitempty"`
}

// Internals is how the services batched the work and called Redis, from
// their own metrics over load and drain.
type Internals struct {
	IngestEventsPerRequest  float64 `json:"ingest_events_per_request"`
	IngestEventsPerPipeline float64 `json:"ingest_events_per_pipeline"` // per Redis round trip
	AnalyzerEventsPerBatch  float64 `json:"analyzer_events_per_batch"`
	AnalyzerBatchMs         float64 `json:"analyzer_batch_ms"` // load, apply and write one batch
	AnalyzerBatchP99Ms      float64 `json:"analyzer_batch_p99_ms"`
	// AnalyzerBatchMaxBucketMs bounds the slowest batch: the upper bound of
	// the highest histogram bucket with a batch in it.
	AnalyzerBatchMaxBucketMs float64 `json:"analyzer_batch_max_bucket_ms"`
	// RedisCalls: by service ("ingest", "analyzers") and op (command
	// name, "pipeline", "evalsha" for the scripts).
	RedisCalls map[string]map[string]RedisCalls `json:"redis_calls"`
}

// RedisCommand is one command in Redis's INFO commandstats over load and
// drain: where Redis's own time went. A script's (evalsha) time includes
// that of the commands it calls, which are also counted on their own.
type RedisCommand struct {
	Command           string  `json:"command"`
	Calls             int64   `json:"calls"`
	Usec              int64   `json:"usec"`
	UsecPerCall       float64 `json:"usec_per_call"`
	PerThousandEvents float64 `json:"per_1000_events"`
	UsecPerEvent      float64 `json:"usec_per_event"`
	Share             float64 `json:"share"` // of the commands' time, scripts excluded
}

// RedisCalls counts one kind of Redis call.
type RedisCalls struct {
	Calls             int64   `json:"calls"`
	PerThousandEvents float64 `json:"per_1000_events"`
	MeanMs            float64 `json:"mean_ms"`
	P99Ms             float64 `json:"p99_ms"`
	MaxBucketMs       float64 `json:"max_bucket_ms"` // the slowest call was at most this
	sumSeconds        float64
	buckets           []promtext.Bucket
}

// Latency summarizes a latency histogram, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// EndToEnd is the delay from ingest's receipt to the analysis written,
// from the analyzers' pulse_end_to_end_latency_seconds (bucket bounds 1,
// 2.5, 5, 10, 25, 50, 100, 250 ms…: quantiles are interpolated, the
// fractions exact).
type EndToEnd struct {
	Events      int64   `json:"events"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	Within10Ms  float64 `json:"within_10ms"`
	Within50Ms  float64 `json:"within_50ms"`
	Within250Ms float64 `json:"within_250ms"`
}

// ProcessCPU is one process's CPU use: cores during the load, CPU seconds
// over load and drain, and CPU microseconds per accepted event.
type ProcessCPU struct {
	Cores          float64 `json:"cores"`
	Seconds        float64 `json:"seconds"`
	MicrosPerEvent float64 `json:"us_per_event"`
}

// Streams is the size of the shards' streams during and after a load.
type Streams struct {
	Known             bool  `json:"known"`
	MaxEntries        int64 `json:"max_entries"`
	MaxBytes          int64 `json:"max_bytes"`
	EntriesAfterDrain int64 `json:"entries_after_drain"`
	BytesAfterDrain   int64 `json:"bytes_after_drain"`
}

// TimelinePoint is one second of a load as the api saw it.
type TimelinePoint struct {
	Second         float64 `json:"t"`
	AnalyzedPerSec float64 `json:"analyzed_per_sec"`
	Backlog        int64   `json:"backlog"`
	StreamEntries  int64   `json:"stream_entries"`
}

// Memory is the memory scenario.
type Memory struct {
	Devices                   int            `json:"devices"`
	EventsPerDevice           int            `json:"events_per_device"`
	NewDevicesSeen            int64          `json:"new_devices_seen"`
	Complete                  bool           `json:"complete"` // every event accepted and analyzed: the figures hold
	UsedMemoryBefore          int64          `json:"used_memory_before"`
	UsedMemoryAfter           int64          `json:"used_memory_after"`
	StreamBytesBefore         int64          `json:"stream_bytes_before"`
	StreamBytesAfter          int64          `json:"stream_bytes_after"`
	BytesPerDevice            float64        `json:"bytes_per_device"`
	DeviceIndexBytesPerDevice float64        `json:"device_index_bytes_per_device"`
	SampledDevices            int            `json:"sampled_devices"`
	StateKeyBytes             float64        `json:"state_key_bytes"`
	DevicesWithAnomalyList    float64        `json:"devices_with_anomaly_list"`
	AnomalyListKeyBytes       float64        `json:"anomaly_list_key_bytes"`
	Warm                      *WarmDevices   `json:"warm_devices,omitempty"`
	RSS                       map[string]RSS `json:"rss"`
	Load                      *LoadResult    `json:"load"`
}

// WarmDevices samples devices that have seen many events (the load
// scenarios'): full windows and anomaly lists, what a device costs in the
// steady state, projected from the fresh devices' measured overheads.
type WarmDevices struct {
	Sampled                 int     `json:"sampled"`
	EventsPerDevice         float64 `json:"events_per_device"`
	StateKeyBytes           float64 `json:"state_key_bytes"`
	WithAnomalyList         float64 `json:"with_anomaly_list"`
	AnomalyListBytes        float64 `json:"anomaly_list_bytes"`
	AnomaliesPerList        float64 `json:"anomalies_per_list"`
	BytesPerAnomaly         float64 `json:"bytes_per_anomaly"`
	ProjectedBytesPerDevice float64 `json:"projected_bytes_per_device"`
	ProjectedAtListCap      float64 `json:"projected_bytes_at_list_cap"`
}

// SignalMemory is the memory-signals scenario: new devices with 2 signals
// per event, then as many with 6, each warm (full windows, a full daily
// profile), and what each group added to Redis.
type SignalMemory struct {
	Devices         int            `json:"devices"` // per group
	EventsPerDevice int            `json:"events_per_device"`
	WindowSize      int            `json:"window_size"`
	RoundSeconds    float64        `json:"round_seconds"` // between a device's events
	Groups          []*SignalGroup `json:"groups"`        // 2 signals, then 6
	// Derived from the groups: every event accepted and analyzed in both.
	Complete bool `json:"complete"`
	// BytesPerSignal is (bytes_6 − bytes_2) / (extra signals · devices):
	// what one more signal costs a warm device in Redis.
	BytesPerSignal float64 `json:"bytes_per_extra_signal"`
	// WindowValueBytes is the window's own values, 8 · WINDOW_SIZE;
	// BeyondWindow is BytesPerSignal less them.
	WindowValueBytes int     `json:"window_value_bytes"`
	BeyondWindow     float64 `json:"bytes_beyond_window"`
	// The same difference in the state hashes' MEMORY USAGE, and in the
	// sampled states' length: the cross-checks.
	StateHashBytesPerSignal  float64 `json:"state_hash_bytes_per_extra_signal"`
	StateValueBytesPerSignal float64 `json:"state_value_bytes_per_extra_signal"`
}

// SignalGroup is one group of devices of the memory-signals scenario.
type SignalGroup struct {
	Signals        int         `json:"signals"`
	Load           *LoadResult `json:"load"`
	Complete       bool        `json:"complete"`
	NewDevicesSeen int64       `json:"new_devices_seen"`
	// Redis's used_memory after − before, and what it includes that the
	// figure leaves out: the streams (trimmed once analyzed) and the
	// anomaly and alert keys (the devices' own and the shards' lists).
	UsedMemory       int64 `json:"used_memory_delta"`
	StreamBytes      int64 `json:"stream_bytes_delta"`
	AnomalyAlertKeys int64 `json:"anomaly_alert_key_bytes"`
	// BytesPerDevice is (UsedMemory − StreamBytes − AnomalyAlertKeys) /
	// Devices.
	BytesPerDevice float64 `json:"bytes_per_device"`
	// StateHashBytes is the shards' state hashes' MEMORY USAGE after −
	// before; StateValueBytes a sampled state's length (HSTRLEN).
	StateHashBytes          int64   `json:"state_hash_bytes_delta"`
	StateHashBytesPerDevice float64 `json:"state_hash_bytes_per_device"`
	Sampled                 int     `json:"sampled"`
	StateValueBytes         float64 `json:"state_value_bytes"`
}

// derive computes the per-signal figures from the two groups.
func (sm *SignalMemory) derive() {
	if len(sm.Groups) != 2 || sm.Groups[1].Signals <= sm.Groups[0].Signals {
		return
	}
	g2, g6 := sm.Groups[0], sm.Groups[1]
	extra := float64(g6.Signals - g2.Signals)
	sm.Complete = g2.Complete && g6.Complete
	sm.BytesPerSignal = round((g6.BytesPerDevice-g2.BytesPerDevice)/extra, 1)
	sm.WindowValueBytes = 8 * sm.WindowSize
	sm.BeyondWindow = round(sm.BytesPerSignal-float64(sm.WindowValueBytes), 1)
	sm.StateHashBytesPerSignal = round((g6.StateHashBytesPerDevice-g2.StateHashBytesPerDevice)/extra, 1)
	sm.StateValueBytesPerSignal = round((g6.StateValueBytes-g2.StateValueBytes)/extra, 1)
}

// Baseline is a run of the code before named metrics that the two-signal
// loads are compared with.
type Baseline struct {
	Report string `json:"report"` // the path given to -baseline
	Label  string `json:"label,omitempty"`
	Commit string `json:"commit,omitempty"`
	Time   string `json:"time"`
	// Loads are its single and batch scenarios, by name.
	Loads map[string]BaselineLoad `json:"loads"`
}

// BaselineLoad is one load of the baseline run.
type BaselineLoad struct {
	AnalyzedPerSec float64 `json:"analyzed_per_sec"`
	// Ceiling is that run's HTTP ceiling (single) or pipelined XADD rate
	// (batch); 0 if it was not measured.
	Ceiling float64 `json:"ceiling,omitempty"`
}

// name is how the report refers to the baseline run.
func (b *Baseline) name() string {
	parts := []string{}
	if b.Label != "" {
		parts = append(parts, b.Label)
	}
	if b.Commit != "" {
		parts = append(parts, "commit "+b.Commit)
	}
	if len(parts) == 0 {
		parts = append(parts, b.Time)
	}
	return strings.Join(parts, ", ")
}

// readBaseline reads the single and batch loads of a report, with the
// ceilings of the same run.
func readBaseline(path string) (*Baseline, error) {
	r, err := readReport(path)
	if err != nil {
		return nil, fmt.Errorf("-baseline: %w", err)
	}
	b := &Baseline{Report: path, Label: r.Label, Commit: r.Commit, Time: r.Time, Loads: map[string]BaselineLoad{}}
	if sc := r.scenario("single"); sc != nil {
		l := BaselineLoad{AnalyzedPerSec: sc.AnalyzedPerSecDuringLoad}
		if c := r.ceilingScenario(); c != nil {
			l.Ceiling = c.AcceptedPerSec
		}
		b.Loads["single"] = l
	}
	if sc := r.scenario("batch"); sc != nil {
		x, _ := r.xaddCeiling()
		b.Loads["batch"] = BaselineLoad{AnalyzedPerSec: sc.AnalyzedPerSecDuringLoad, Ceiling: x}
	}
	if len(b.Loads) == 0 {
		return nil, fmt.Errorf("-baseline %s: neither a single nor a batch load", path)
	}
	return b, nil
}

// RSS is a process's resident memory now and at its peak.
type RSS struct {
	Bytes     int64 `json:"bytes"`
	PeakBytes int64 `json:"peak_bytes"`
}

// Target is one of the targets beside what was measured.
type Target struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured in this run
	Note     string `json:"note,omitempty"`
}

func newReport(o *options) *Report {
	r := &Report{
		Label:   o.label,
		Time:    time.Now().UTC().Format(time.RFC3339),
		Command: strings.TrimSpace("go run ./tools/cmd/pulse-bench " + shellJoin(o.args)),
		Setup:   Setup{Shards: o.shards, ServiceEnv: o.env, LoadSeconds: o.duration.Seconds(), Devices: o.devices},
	}
	r.Machine = thisMachine()
	// Read-only git queries, to tie the numbers to the code measured.
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = o.src // "": the current directory
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := git("rev-parse", "--short", "HEAD"); err == nil {
		r.Commit = out
		if out, err := git("status", "--porcelain", "--untracked-files=no"); err == nil {
			r.Dirty = out != ""
		}
	}
	r.Source = o.src
	return r
}

func (r *Report) describe(ctx context.Context, s *system) {
	if s.own {
		r.Setup.Mode = "own pipeline"
		for _, p := range s.procs {
			r.Setup.Processes = append(r.Setup.Processes, p.name)
		}
	} else {
		r.Setup.Mode = "given URLs"
	}
	r.Setup.Shards = s.shards
	if s.rdb != nil {
		if info, err := s.rdb.Info(ctx, "server").Result(); err == nil {
			r.Machine.RedisVersion = infoField(info, "redis_version")
		}
	}
}

// thisMachine describes the computer we run on, from /proc where it can;
// what it cannot read stays empty (the model: the architecture).
func thisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Model: runtime.GOARCH}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return m
	}
	if cpus, err := fs.CPUInfo(); err == nil && len(cpus) > 0 && cpus[0].ModelName != "" {
		m.Model = cpus[0].ModelName
	}
	if mem, err := fs.Meminfo(); err == nil && mem.MemTotalBytes != nil {
		m.MemoryBytes = int64(*mem.MemTotalBytes)
	}
	if v, err := fs.SysctlStrings("kernel/osrelease"); err == nil && len(v) > 0 {
		m.Kernel = strings.Join(v, " ")
	}
	if l, err := fs.LoadAvg(); err == nil {
		m.LoadAverage = fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
	}
	return m
}

func (r *Report) scenario(name string) *LoadResult {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func met(ok bool) *bool { return &ok }

// Target thresholds (the issue's).
const (
	singleTarget  = 20000
	batchTarget   = 250000
	ceilingShare  = 0.40 // single's analyzed rate over the HTTP ceiling's
	xaddShare     = 0.25 // batch's analyzed rate over Redis's pipelined XADD
	singleP99Ms   = 10   // ingest latency under the single scenario's load
	singleConns   = 64   // the connections the single targets are set for
	ingestP99Ms   = 5
	e2eP99Ms      = 50
	bytesPerDev   = 2048
	analyzerRSS   = 150 << 20
	baselineShare = 0.95 // two-signal loads over the baseline's, each against its own ceiling
	signalBytes   = 600  // Redis per warm signal beyond its window's values
	streamsPerKey = 200  // entries a drained stream may keep: XTRIM MINID ~ trims whole nodes of 100
)

// evaluate sets Targets, and the figures derived from the measured ones,
// from the results; it also serves reports written before those figures
// existed.
func (r *Report) evaluate() {
	for _, sc := range r.Scenarios {
		sc.PipelineCPU = pipelineCPU(sc)
		if sc.SignalsPerEvent == 0 && !sc.HTTPCeiling {
			sc.SignalsPerEvent = 2 // a report from before named metrics
		}
		sc.AcceptedSignalsPerSec = round(sc.AcceptedPerSec*float64(sc.SignalsPerEvent), 0)
		sc.AnalyzedSignalsPerSec = round(sc.AnalyzedPerSecDuringLoad*float64(sc.SignalsPerEvent), 0)
	}
	if r.SignalMemory != nil {
		r.SignalMemory.derive()
	}
	r.Targets = nil
	add := func(t Target) { r.Targets = append(r.Targets, t) }
	sustain := func(name string, target float64) {
		sc := r.scenario(name)
		kind := "single-event POSTs"
		if name == "batch" {
			kind = "batch POSTs"
		}
		t := Target{Name: kind + ": accepted", Target: fmt.Sprintf("≥ %s events/s", thousands(target))}
		a := Target{Name: kind + ": analyzed, bounded lag", Target: fmt.Sprintf("≥ %s events/s over the load, backlog at its end ≤ 1 s of it", thousands(target))}
		if sc == nil {
			t.Measured, a.Measured = "not run", "not run"
		} else {
			t.Measured = fmt.Sprintf("%s events/s over %.0f s", thousands(sc.AcceptedPerSec), sc.LoadSeconds)
			t.Met = met(sc.AcceptedPerSec >= target && sc.Failed() == 0)
			a.Measured = fmt.Sprintf("%s events/s during the load (%s with the %.1f s drain); backlog at end %s, max %s",
				thousands(sc.AnalyzedPerSecDuringLoad), thousands(sc.AnalyzedPerSecWithDrain), sc.DrainSeconds,
				thousands(float64(sc.BacklogAtEnd)), thousands(float64(sc.MaxBacklog)))
			a.Met = met(sc.AnalyzedPerSecDuringLoad >= target && float64(sc.BacklogAtEnd) <= target && sc.Drained)
			if sc.LoadSeconds < 59 {
				note := fmt.Sprintf("%.0f s load; the target's 60 s needs -long", sc.LoadSeconds)
				t.Note, a.Note = note, note
			}
			if f := sc.Failed(); f > 0 {
				t.Note = strings.TrimPrefix(t.Note+fmt.Sprintf("; %d requests failed %v", f, sc.Errors), "; ")
			}
		}
		add(t)
		add(a)
	}
	sustain("single", singleTarget)
	r.singleTargets(add)
	sustain("batch", batchTarget)
	r.batchShareTarget(add)
	add(r.baselineTarget("single"))
	add(r.baselineTarget("batch"))

	o := r.scenario("open-1000")
	p99 := Target{Name: "open loop 1,000 events/s: ingest latency", Target: fmt.Sprintf("p99 ≤ %d ms", ingestP99Ms), Measured: "not run"}
	e2e := endToEndTarget("open loop 1,000 events/s: receipt → analysis", o)
	orig := Target{Name: "original promise", Target: "1000+ requests/s, p95 < 50 ms", Measured: "not run"}
	if o != nil {
		p99.Measured = fmt.Sprintf("p99 %.2f ms (p50 %.2f, max %.1f; %d failed)", o.Latency.P99Ms, o.Latency.P50Ms, o.Latency.MaxMs, o.Failed())
		p99.Met = met(o.Latency.P99Ms <= ingestP99Ms && o.Failed() == 0 && o.Missed == 0)
		orig.Measured = fmt.Sprintf("%s requests/s, p95 %.2f ms", thousands(o.RequestsPerSec), o.Latency.P95Ms)
		orig.Met = met(o.RequestsPerSec >= 990 && o.Latency.P95Ms < 50 && o.Failed() == 0)
	}
	add(p99)
	add(e2e)
	add(orig)

	mem := Target{Name: "Redis memory per device (100,000 devices)", Target: "≤ 2 KiB", Measured: "not run"}
	rss := Target{Name: "analyzer RSS at 100,000 devices", Target: "≤ 150 MiB", Measured: "not run"}
	if m := r.Memory; m != nil {
		mem.Measured = fmt.Sprintf("%s bytes per new device (%d devices, %d events each)", thousands(m.BytesPerDevice), m.Devices, m.EventsPerDevice)
		mem.Met = met(m.BytesPerDevice <= bytesPerDev)
		if !m.Complete {
			mem.Met = nil
			mem.Measured += " — invalid: not every event was accepted and analyzed"
		} else if w := m.Warm; w != nil {
			mem.Measured += fmt.Sprintf("; a device with %s events (full windows, %s anomalies listed): ≈ %s bytes; with the list at its %d-anomaly cap: ≈ %s bytes",
				thousands(w.EventsPerDevice), thousands(w.AnomaliesPerList*w.WithAnomalyList), thousands(w.ProjectedBytesPerDevice), anomalyListCap, thousands(w.ProjectedAtListCap))
			mem.Met = met(m.BytesPerDevice <= bytesPerDev && w.ProjectedBytesPerDevice <= bytesPerDev)
			mem.Note = "met only if a warm device fits too"
		}
		var worst int64
		var parts []string
		for _, name := range sortedKeys(m.RSS) {
			if strings.HasPrefix(name, "analyzer") {
				worst = max(worst, m.RSS[name].PeakBytes)
				parts = append(parts, fmt.Sprintf("%s %s (peak %s)", name, bytesIEC(m.RSS[name].Bytes), bytesIEC(m.RSS[name].PeakBytes)))
			}
		}
		if len(parts) > 0 {
			rss.Measured = strings.Join(parts, ", ")
			rss.Met = met(worst <= analyzerRSS)
		} else {
			rss.Measured = "unknown (processes not ours)"
		}
		if m.Devices != 100000 {
			rss.Note = fmt.Sprintf("measured with %d devices", m.Devices)
			mem.Note = strings.TrimPrefix(mem.Note+"; "+rss.Note, "; ")
		}
	}
	add(mem)
	add(rss)
	add(r.signalMemoryTarget())

	st := Target{Name: "stream memory under sustained load", Target: fmt.Sprintf("bounded: streams trimmed back once analyzed (≤ %d entries per shard after the drain)", streamsPerKey), Measured: "not run"}
	var parts []string
	ok := true
	seen := false
	for _, sc := range r.Scenarios {
		if sc.Kind != "closed" || !sc.Streams.Known {
			continue
		}
		seen = true
		parts = append(parts, fmt.Sprintf("%s: max %s entries (%s), %s after the drain",
			sc.Name, thousands(float64(sc.Streams.MaxEntries)), bytesIEC(sc.Streams.MaxBytes), thousands(float64(sc.Streams.EntriesAfterDrain))))
		ok = ok && sc.Drained && sc.Streams.EntriesAfterDrain <= int64(streamsPerKey*r.Setup.Shards)
	}
	if seen {
		st.Measured = strings.Join(parts, "; ")
		st.Met = met(ok)
		st.Note = "the maximum follows the backlog: bounded only while the analyzers keep up"
	}
	add(st)
}

// share returns part/whole, and false when whole is not a measured rate.
func share(part, whole float64) (float64, bool) {
	if whole <= 0 {
		return 0, false
	}
	return part / whole, true
}

// ceilingScenario returns the HTTP ceiling's load of this run, nil if it
// did not run.
func (r *Report) ceilingScenario() *LoadResult {
	for _, s := range r.Scenarios {
		if s.HTTPCeiling {
			return s
		}
	}
	return nil
}

// xaddCeiling returns the median rate of Redis's plain pipelined XADD
// (XADD key * f v), the ceiling the batch ratio is taken against;
// 0 if not measured.
func (r *Report) xaddCeiling() (float64, string) {
	if r.Xadd == nil || len(r.Xadd.Shapes) == 0 {
		return 0, ""
	}
	return r.Xadd.Shapes[0].Median, r.Xadd.Shapes[0].Command
}

// singleTargets adds the single-event targets measured against the same
// run: the share of the HTTP ceiling, ingest's p99 under that load, and
// receipt → analysis.
func (r *Report) singleTargets(add func(Target)) {
	sc, c := r.scenario("single"), r.ceilingScenario()
	ratio := Target{Name: "single-event POSTs: analyzed vs the HTTP ceiling",
		Target:   fmt.Sprintf("≥ %.0f%% of a bare net/http 202 handler's rate, same load, same run", 100*ceilingShare),
		Measured: "not run"}
	p99 := Target{Name: "single-event POSTs: ingest latency at that load", Target: fmt.Sprintf("p99 ≤ %d ms (%d connections)", singleP99Ms, singleConns), Measured: "not run"}
	e2e := endToEndTarget("single-event POSTs: receipt → analysis", sc)
	switch {
	case sc == nil && c == nil:
	case sc == nil:
		ratio.Measured = fmt.Sprintf("ceiling %s requests/s; single not run", thousands(c.AcceptedPerSec))
	case c == nil:
		ratio.Measured = fmt.Sprintf("single analyzed %s events/s; ceiling not run", thousands(sc.AnalyzedPerSecDuringLoad))
	default:
		if f, ok := share(sc.AnalyzedPerSecDuringLoad, c.AcceptedPerSec); ok {
			ratio.Measured = fmt.Sprintf("%.1f%%: %s analyzed events/s during the load, the ceiling %s requests/s (p99 %.2f ms)",
				100*f, thousands(sc.AnalyzedPerSecDuringLoad), thousands(c.AcceptedPerSec), c.Latency.P99Ms)
			ratio.Met = met(f >= ceilingShare && c.Failed() == 0)
		} else {
			ratio.Measured = "unknown: the ceiling accepted nothing"
		}
		if c.Concurrency != sc.Concurrency || c.LoadSeconds < sc.LoadSeconds/2 {
			ratio.Note = fmt.Sprintf("not the same load: the ceiling %d connections for %.0f s, single %d for %.0f s",
				c.Concurrency, c.LoadSeconds, sc.Concurrency, sc.LoadSeconds)
			ratio.Met = nil
		}
	}
	if sc != nil {
		p99.Measured = fmt.Sprintf("p99 %.2f ms (p50 %.2f, max %.1f) at %s events/s, %d connections; %d failed",
			sc.Latency.P99Ms, sc.Latency.P50Ms, sc.Latency.MaxMs, thousands(sc.AcceptedPerSec), sc.Concurrency, sc.Failed())
		p99.Met = met(sc.Latency.P99Ms <= singleP99Ms && sc.Failed() == 0)
		if sc.Concurrency != singleConns {
			p99.Note = fmt.Sprintf("measured with %d connections, the target is set for %d", sc.Concurrency, singleConns)
		}
	}
	add(ratio)
	add(p99)
	add(e2e)
}

// endToEndTarget is the receipt → analysis target of load sc (nil: not
// run), from the analyzers' histogram.
func endToEndTarget(name string, sc *LoadResult) Target {
	t := Target{Name: name, Target: fmt.Sprintf("p99 ≤ %d ms", e2eP99Ms), Measured: "not run"}
	switch {
	case sc == nil:
	case sc.EndToEnd == nil:
		t.Measured = "unknown (no analyzer /prometheus)"
	default:
		e := sc.EndToEnd
		t.Measured = fmt.Sprintf("p99 ≈ %.1f ms, %.2f%% within 50 ms (p50 ≈ %.1f ms)", e.P99Ms, 100*e.Within50Ms, e.P50Ms)
		t.Met = met(e.Within50Ms >= 0.99)
		t.Note = "from the analyzers' histogram: exact against the 50 ms bucket bound, p99 interpolated"
	}
	return t
}

// batchShareTarget adds batch's analyzed rate as a share of Redis's own
// pipelined XADD rate in the same run.
func (r *Report) batchShareTarget(add func(Target)) {
	sc := r.scenario("batch")
	x, cmd := r.xaddCeiling()
	t := Target{Name: "batch POSTs: analyzed vs Redis's pipelined XADD",
		Target: fmt.Sprintf("≥ %.0f%% of Redis's own pipelined XADD (%s) on the same Redis, same run", 100*xaddShare, cmdOr(cmd, "XADD key * f v")), Measured: "not run"}
	switch {
	case sc == nil && x == 0:
	case sc == nil:
		t.Measured = fmt.Sprintf("XADD %s entries/s; batch not run", thousands(x))
	case x == 0:
		t.Measured = fmt.Sprintf("batch analyzed %s events/s; xadd not run", thousands(sc.AnalyzedPerSecDuringLoad))
	default:
		f, _ := share(sc.AnalyzedPerSecDuringLoad, x)
		t.Measured = fmt.Sprintf("%.1f%%: %s analyzed events/s during the load, XADD %s entries/s",
			100*f, thousands(sc.AnalyzedPerSecDuringLoad), thousands(x))
		t.Met = met(f >= xaddShare && sc.Drained && float64(sc.BacklogAtEnd) <= sc.AnalyzedPerSecDuringLoad)
		if sc.LoadSeconds < 59 {
			t.Note = fmt.Sprintf("%.0f s load; the target's 60 s needs -long", sc.LoadSeconds)
		}
	}
	add(t)
}

// baselineTarget compares the two-signal load name (single or batch) with
// the baseline's: each as a share of its own run's ceiling (the HTTP
// ceiling, Redis's pipelined XADD), so that two runs on a shared machine
// compare; raw rates when a ceiling is missing.
func (r *Report) baselineTarget(name string) Target {
	kind, ceiling := "single-event POSTs", "HTTP ceiling"
	now := 0.0
	if c := r.ceilingScenario(); c != nil {
		now = c.AcceptedPerSec
	}
	if name == "batch" {
		kind, ceiling = "batch POSTs", "pipelined XADD"
		now, _ = r.xaddCeiling()
	}
	t := Target{Name: "two signals, " + kind + ": against the baseline",
		Target:   fmt.Sprintf("≥ %.0f%% of the code before named metrics (-baseline): analyzed events/s, each run's as a share of its own %s", 100*baselineShare, ceiling),
		Measured: "not run"}
	sc := r.scenario(name)
	var base BaselineLoad
	ok := false
	if r.Baseline != nil {
		base, ok = r.Baseline.Loads[name]
	}
	switch {
	case sc == nil:
	case r.Baseline == nil:
		t.Measured = fmt.Sprintf("%s analyzed events/s; no -baseline report to compare with", thousands(sc.AnalyzedPerSecDuringLoad))
	case !ok || base.AnalyzedPerSec <= 0:
		t.Measured = fmt.Sprintf("%s analyzed events/s; the baseline (%s) has no %s load", thousands(sc.AnalyzedPerSecDuringLoad), r.Baseline.name(), name)
	case now > 0 && base.Ceiling > 0:
		f := (sc.AnalyzedPerSecDuringLoad / now) / (base.AnalyzedPerSec / base.Ceiling)
		t.Measured = fmt.Sprintf("%.1f%%: %.1f%% of the %s now (%s of %s/s), %.1f%% in the baseline (%s of %s/s; %s)",
			100*f, 100*sc.AnalyzedPerSecDuringLoad/now, ceiling, thousands(sc.AnalyzedPerSecDuringLoad), thousands(now),
			100*base.AnalyzedPerSec/base.Ceiling, thousands(base.AnalyzedPerSec), thousands(base.Ceiling), r.Baseline.name())
		t.Met = met(f >= baselineShare && sc.Failed() == 0)
	default:
		f := sc.AnalyzedPerSecDuringLoad / base.AnalyzedPerSec
		t.Measured = fmt.Sprintf("%.1f%%: %s analyzed events/s now, %s in the baseline (%s)",
			100*f, thousands(sc.AnalyzedPerSecDuringLoad), thousands(base.AnalyzedPerSec), r.Baseline.name())
		t.Met = met(f >= baselineShare && sc.Failed() == 0)
		t.Note = fmt.Sprintf("raw rates: one of the runs has no %s, so differences of the machine count", ceiling)
	}
	return t
}

// signalMemoryTarget is the Redis memory of one more signal of a warm
// device, beyond its window's own values.
func (r *Report) signalMemoryTarget() Target {
	t := Target{Name: "Redis per warm signal (named metrics)", Target: fmt.Sprintf("≤ %d B beyond the window's own values (8 B × WINDOW_SIZE)", signalBytes), Measured: "not run"}
	sm := r.SignalMemory
	if sm == nil || len(sm.Groups) != 2 {
		return t
	}
	t.Measured = fmt.Sprintf("%s B per extra signal (%s devices × 6 vs × 2 signals, %d events each), less the window's %d B: %s B",
		thousands(sm.BytesPerSignal), thousands(float64(sm.Devices)), sm.EventsPerDevice, sm.WindowValueBytes, thousands(sm.BeyondWindow))
	t.Met = met(sm.BeyondWindow <= signalBytes)
	t.Note = "full windows and daily profiles, no anomalies: a signal that has alerted keeps its alert state too"
	if !sm.Complete {
		t.Met = nil
		t.Measured += " — invalid: not every event was accepted and analyzed"
	}
	return t
}

// cmdOr quotes cmd as code, or names what would have run when it did not.
func cmdOr(cmd, planned string) string {
	if cmd == "" {
		cmd = planned
	}
	return "`" + cmd + "`"
}

// PipelineCPU is the CPU time of the whole pipeline per analyzed event:
// every process the harness started for it, over load and drain.
type PipelineCPU struct {
	Processes      []string `json:"processes"`
	Seconds        float64  `json:"seconds"`
	MicrosPerEvent float64  `json:"us_per_analyzed_event"`
	// LoadgenMicros is the load generator's share per analyzed event, not
	// counted in the pipeline's.
	LoadgenMicros float64 `json:"loadgen_us_per_analyzed_event,omitempty"`
}

// pipelineCPU adds up the CPU seconds of the pipeline's processes (not the
// load generator's, nor the HTTP ceiling's) and divides by the events
// analyzed; nil without processes of ours or analyzed events.
func pipelineCPU(sc *LoadResult) *PipelineCPU {
	if sc.HTTPCeiling || sc.Analyzed <= 0 {
		return nil
	}
	p := &PipelineCPU{}
	for _, name := range sortedKeys(sc.CPU) {
		if name == "loadgen" || name == "ceiling" {
			continue
		}
		p.Processes = append(p.Processes, name)
		p.Seconds += sc.CPU[name].Seconds
	}
	if len(p.Processes) == 0 {
		return nil
	}
	p.Seconds = round(p.Seconds, 2)
	p.MicrosPerEvent = round(p.Seconds/float64(sc.Analyzed)*1e6, 2)
	if lg, ok := sc.CPU["loadgen"]; ok {
		p.LoadgenMicros = round(lg.Seconds/float64(sc.Analyzed)*1e6, 2)
	}
	return p
}

// Failed returns the number of requests not accepted.
func (sc *LoadResult) Failed() int64 {
	var n int64
	for _, c := range sc.Errors {
		n += c
	}
	return n + sc.Missed
}

func (sc *LoadResult) oneLine() string {
	signals := ""
	if sc.SignalsPerEvent > 0 {
		signals = fmt.Sprintf(" = %s signals/s", thousands(sc.AcceptedPerSec*float64(sc.SignalsPerEvent)))
	}
	s := fmt.Sprintf("accepted %s events/s%s (%d failed), ingest p50 %.2f p99 %.2f max %.1f ms; analyzed %s/s during load, backlog at end %s, drained in %.1fs",
		thousands(sc.AcceptedPerSec), signals, sc.Failed(), sc.Latency.P50Ms, sc.Latency.P99Ms, sc.Latency.MaxMs,
		thousands(sc.AnalyzedPerSecDuringLoad), thousands(float64(sc.BacklogAtEnd)), sc.DrainSeconds)
	if sc.EndToEnd != nil {
		s += fmt.Sprintf("; e2e p50 %.1f p99 %.1f ms", sc.EndToEnd.P50Ms, sc.EndToEnd.P99Ms)
	}
	var cpu []string
	for _, name := range sortedKeys(sc.CPU) {
		cpu = append(cpu, fmt.Sprintf("%s %.2f", name, sc.CPU[name].Cores))
	}
	if len(cpu) > 0 {
		s += "; cores: " + strings.Join(cpu, " ") + fmt.Sprintf(" others %.2f", sc.OthersCores)
	}
	return s
}

func (m *Memory) oneLine() string {
	return fmt.Sprintf("%s bytes per device in Redis (state %s B, %.0f%% with an anomaly list of %s B, index %s B); analyzer RSS %s",
		thousands(m.BytesPerDevice), thousands(m.StateKeyBytes), 100*m.DevicesWithAnomalyList, thousands(m.AnomalyListKeyBytes),
		thousands(m.DeviceIndexBytesPerDevice), rssList(m.RSS, "analyzer"))
}

func (g *SignalGroup) oneLine() string {
	return fmt.Sprintf("%s bytes per device in Redis (used_memory %s, less streams %s and anomaly and alert keys %s); state hashes %s B per device, a state %s B",
		thousands(g.BytesPerDevice), bytesIEC(g.UsedMemory), bytesIEC(g.StreamBytes), bytesIEC(g.AnomalyAlertKeys),
		thousands(g.StateHashBytesPerDevice), thousands(g.StateValueBytes))
}

func (sm *SignalMemory) oneLine() string {
	return fmt.Sprintf("%s B of Redis per extra signal, %s B beyond the window's %d B of values (state hashes: %s B, a state: %s B per signal)",
		thousands(sm.BytesPerSignal), thousands(sm.BeyondWindow), sm.WindowValueBytes, thousands(sm.StateHashBytesPerSignal), thousands(sm.StateValueBytesPerSignal))
}

func rssList(m map[string]RSS, prefix string) string {
	var parts []string
	for _, name := range sortedKeys(m) {
		if strings.HasPrefix(name, prefix) {
			parts = append(parts, fmt.Sprintf("%s %s", name, bytesIEC(m[name].Bytes)))
		}
	}
	return strings.Join(parts, ", ")
}

// shellJoin quotes the arguments that a shell would split or expand.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func (r *Report) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printSummary writes the targets table as plain text.
func (r *Report) printSummary(w io.Writer) {
	fmt.Fprintln(w)
	for _, h := range r.headlines() {
		fmt.Fprintln(w, strings.NewReplacer("**", "", "`", "", "<br>", "").Replace(h))
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  %-9s %s: %s — %s\n", verdict(t.Met), t.Name, t.Target, t.Measured)
	}
}

func verdict(m *bool) string {
	switch {
	case m == nil:
		return "-"
	case *m:
		return "met"
	}
	return "NOT MET"
}

// thousands formats v rounded, with thin separators: 12 345.
func thousands(v float64) string {
	neg := v < 0
	s := strconv.FormatFloat(abs(v), 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
