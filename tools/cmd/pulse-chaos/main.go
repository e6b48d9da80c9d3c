// Command pulse-chaos is the long form of the chaos test (make chaos): the
// whole pipeline under load on this machine — a redis-server with AOF of
// its own on a free loopback port, ingest, analyzers and the api from
// -bin — while analyzers, ingest and Redis are SIGKILLed and restarted,
// once with appendfsync always and once with everysec; then a run in
// which Redis also loses everything now and then (FLUSHALL, a restart
// with its data deleted). It prints the faults injected and the events
// acknowledged, analyzed and lost, and exits 1 when a guarantee did not
// hold (see tools/chaos and docs/CHAOS.md):
//
//	make build && go run ./tools/cmd/pulse-chaos -bin bin
//
// Traffic goes to 127.0.0.1 only; the load is bounded by -load and
// -max-events, the drain by -drain.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pulse-iot/pulse/internal/cmdmain"
	"github.com/pulse-iot/pulse/tools/chaos"
)

func main() {
	cmdmain.Run("pulse-chaos", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pulse-chaos", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		bin        = fs.String("bin", "bin", "folder of the ingest, analyzer and api binaries (make build)")
		fsyncs     = fs.String("fsync", "always,everysec", "appendfsync modes to run, comma-separated")
		work       = fs.String("workdir", ".run/chaos", "logs and Redis data, one sub-folder per mode (\"\": temporary, removed)")
		out        = fs.String("out", "", "also write the table (Markdown) to this file")
		load       = fs.Duration("load", 2*time.Minute, "how long the load runs, per mode")
		faultEvery = fs.Duration("fault-every", 4*time.Second, "time between faults")
		quiet      = fs.Duration("quiet", 10*time.Second, "no fault in the last part of the load")
		kinds      = fs.String("faults", kindNames(chaos.Kinds), "fault kinds to cycle through, comma-separated")
		wipeLoad   = fs.Duration("wipe-load", time.Minute, "how long the run with Redis wiped lasts (appendfsync always; 0: no such run)")
		wipeKinds  = fs.String("wipe-faults", kindNames(chaos.WipeKinds), "fault kinds of the run with Redis wiped")
		minDown    = fs.Duration("min-down", 200*time.Millisecond, "shortest pause before a killed process is started again")
		maxDown    = fs.Duration("max-down", 2*time.Second, "longest pause before a killed process is started again")
		shards     = fs.Int("shards", 8, "SHARDS")
		analyzers  = fs.Int("analyzers", 3, "analyzers running at once")
		ingests    = fs.Int("ingests", 2, "ingest processes")
		devices    = fs.Int("devices", 500, "distinct devices")
		senders    = fs.Int("senders", 6, "concurrent clients")
		batch      = fs.Int("batch", 25, "events per request")
		rate       = fs.Float64("rate", 2000, "events per second, all clients (0: as fast as they go)")
		maxEvents  = fs.Int64("max-events", 2_000_000, "at most this many events per mode")
		drain      = fs.Duration("drain", 2*time.Minute, "how long the pipeline may take to drain after the load")
		seed       = fs.Uint64("seed", 1, "random seed (devices, values, fault targets and pauses)")
	)
	if ok, err := cmdmain.ParseFlags(fs, args); !ok {
		return err
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	type plan struct {
		dir, fsync string
		load       time.Duration
		kinds      []chaos.Kind
	}
	var plans []plan
	for _, mode := range strings.Split(*fsyncs, ",") {
		mode = strings.TrimSpace(mode)
		plans = append(plans, plan{mode, mode, *load, parseKinds(*kinds)})
	}
	if *wipeLoad > 0 {
		plans = append(plans, plan{"wipe", chaos.FsyncAlways, *wipeLoad, parseKinds(*wipeKinds)})
	}

	var reps []*chaos.Report
	for _, pl := range plans {
		dir := ""
		if *work != "" {
			dir = filepath.Join(*work, pl.dir)
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
		rep, err := chaos.Run(ctx, chaos.Options{
			BinDir: binDir, WorkDir: dir, Fsync: pl.fsync,
			Shards: *shards, Analyzers: *analyzers, Ingests: *ingests,
			Devices: *devices, Senders: *senders, Batch: *batch, Rate: *rate, MaxEvents: *maxEvents,
			Load: pl.load, FaultEvery: *faultEvery, Quiet: *quiet, Kinds: pl.kinds, MinDown: *minDown, MaxDown: *maxDown,
			Drain: *drain, Seed: *seed,
			Logf: func(format string, args ...any) {
				fmt.Fprintf(stdout, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
			},
		})
		if err != nil {
			return fmt.Errorf("run %s: %w", pl.dir, err)
		}
		reps = append(reps, rep)
		fmt.Fprintf(stdout, "%s: %d acknowledged at %.0f events/s; %s\n", rep.Name, rep.Acked, rep.AckRate, verdict(rep))
		if wipes, slowest := wipeRecovery(rep); wipes > 0 {
			fmt.Fprintf(stdout, "%s: %d wipes; every shard analyzed again at most %v after Redis served again\n", rep.Name, wipes, slowest.Round(time.Millisecond))
		}
	}

	fmt.Fprintln(stdout)
	if err := chaos.WriteTable(stdout, reps); err != nil {
		return err
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		werr := chaos.WriteTable(f, reps)
		if err := f.Close(); werr == nil {
			werr = err
		}
		if werr != nil {
			return werr
		}
	}
	failed := 0
	for _, r := range reps {
		failed += len(r.Problems)
	}
	if failed > 0 {
		fmt.Fprintln(stdout)
		chaos.WriteProblems(stdout, reps)
		return fmt.Errorf("%d problems; logs in %s", failed, *work)
	}
	return nil
}

// wipeRecovery returns the wipes of a run whose recovery was seen, and the
// longest.
func wipeRecovery(r *chaos.Report) (int, time.Duration) {
	n, slowest := 0, time.Duration(0)
	for _, f := range r.Faults {
		if (f.Kind == chaos.FlushRedis || f.Kind == chaos.EmptyRedis) && f.Err == nil && f.Recovered >= 0 {
			n++
			slowest = max(slowest, f.Recovered)
		}
	}
	return n, slowest
}

func verdict(r *chaos.Report) string {
	if r.OK() {
		return "every guarantee held"
	}
	return fmt.Sprintf("%d problems", len(r.Problems))
}

func parseKinds(list string) []chaos.Kind {
	var ks []chaos.Kind
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			ks = append(ks, chaos.Kind(k))
		}
	}
	return ks
}

func kindNames(ks []chaos.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}
