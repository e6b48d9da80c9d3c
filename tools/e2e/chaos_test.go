package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/tools/chaos"
)

// TestChaosUnderLoad is the short form of make chaos: for each AOF fsync
// mode, 20 s of load on the real binaries while analyzers, ingest and
// Redis are SIGKILLed and restarted, then every device's results are
// checked against what ingest acknowledged (see tools/chaos); and 20 s
// in which Redis is also wiped (FLUSHALL, then an empty restart), where
// every event acknowledged after the latest wipe must be analyzed.
// Nothing here depends on timing: the drain may take up to 90 s, and the
// counts are checked, not how fast they came.
func TestChaosUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs the whole pipeline for about a minute")
	}
	runs := []struct {
		name  string
		fsync string
		kinds []chaos.Kind
		must  []chaos.Kind // injected at least once
	}{
		{"appendfsync always", chaos.FsyncAlways, chaos.Kinds, []chaos.Kind{chaos.KillAnalyzer, chaos.KillRedis}},
		{"appendfsync everysec", chaos.FsyncEverysec, chaos.Kinds, []chaos.Kind{chaos.KillAnalyzer, chaos.KillRedis}},
		{"Redis wiped", chaos.FsyncAlways, chaos.WipeKinds, []chaos.Kind{chaos.FlushRedis, chaos.EmptyRedis}},
	}
	var reps []*chaos.Report
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			work := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			rep, err := chaos.Run(ctx, chaos.Options{
				BinDir: binDir, WorkDir: work, Fsync: run.fsync, Kinds: run.kinds,
				Shards: 4, Analyzers: 2, Ingests: 1,
				Devices: 200, Senders: 4, Batch: 20, Rate: 1000, MaxEvents: 100_000,
				Load: 20 * time.Second, FaultEvery: 2500 * time.Millisecond, Quiet: 3 * time.Second,
				Drain: 90 * time.Second, Seed: 1,
				Logf: t.Logf,
			})
			if err != nil {
				t.Fatal(err)
			}
			reps = append(reps, rep)
			for _, p := range rep.Problems {
				t.Error(p)
			}
			// The first faults come 2.5 s apart from the start of the
			// load, so even a slow machine injects one of each kind.
			for _, k := range run.must {
				if rep.FaultCount(k) == 0 {
					t.Errorf("no %s fault injected: %+v", k, rep.Faults)
				}
			}
			if t.Failed() {
				logs, _ := filepath.Glob(filepath.Join(rep.LogDir, "*.log"))
				for _, l := range logs {
					b, _ := os.ReadFile(l)
					t.Logf("%s:\n%s", filepath.Base(l), tail(string(b), 3000))
				}
			}
		})
	}
	var b strings.Builder
	chaos.WriteTable(&b, reps)
	t.Logf("\n%s", b.String())
}
