package realdata

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulse-iot/pulse/internal/cmdmain"
	"github.com/pulse-iot/pulse/tools/docsection"
	"github.com/pulse-iot/pulse/tools/nab"
)

// Section is the name of the report's section in docs/ACCURACY.md.
const Section = "nab"

// Main is pulse-nab's command line.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("pulse-nab", flag.ContinueOnError)
	flags.SetOutput(stderr)
	cfg := DefaultConfig()
	var (
		nabDir    = flags.String("nab", "../shared/nab", "NAB checkout (github.com/numenta/NAB)")
		asdDir    = flags.String("asd", "../shared/asd", "ASD copy (\"\": skip; skipped with a note when absent)")
		out       = flags.String("out", "docs/ACCURACY.md", "Markdown file whose NAB section is (re)written (\"\": none)")
		results   = flags.String("results", "", "directory for NAB result files (default: a temporary one, removed)")
		python    = flags.String("python", "", "python3 with pandas: also score with NAB's run.py and compare (\"\": no)")
		gaussian  = flags.Bool("gaussian", true, "also score NAB's windowed Gaussian (checks the harness)")
		sweep     = flags.Bool("sweep", true, "sweep ALERT_THRESHOLD for the standard profile")
		threshold = flags.Float64("alert-threshold", cfg.Alert.Threshold, "ALERT_THRESHOLD")
		recovery  = flags.Int("alert-recovery", cfg.Alert.Recovery, "ALERT_RECOVERY")
	)
	if ok, err := cmdmain.ParseFlags(flags, args); !ok {
		return err
	}
	cfg.Alert.Threshold, cfg.Alert.Recovery = *threshold, *recovery
	o := Options{NABDir: *nabDir, ASDDir: *asdDir, Config: cfg, ResultsDir: *results, Gaussian: *gaussian, Python: *python, Log: stdout}
	if *sweep {
		o.Thresholds = DefaultThresholds()
	}
	if o.ASDDir != "" {
		if _, err := os.Stat(filepath.Join(o.ASDDir, "csv")); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stdout, "no ASD at %s: skipped\n", o.ASDDir)
			o.ASDDir = ""
		}
	}
	if o.ResultsDir == "" {
		tmp, err := os.MkdirTemp("", "pulse-nab-results-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		o.ResultsDir = tmp
	}
	rep, err := Run(ctx, o)
	if errors.Is(err, nab.ErrNoCorpus) {
		return fmt.Errorf("%w (get it with: git clone https://github.com/numenta/NAB %s, or set NAB_DIR)", err, o.NABDir)
	}
	if err != nil {
		return err
	}
	rep.Command = command(flags)
	fmt.Fprintf(stdout, "NAB alerts: standard %.2f, low FP %.2f, low FN %.2f\n",
		rep.NAB.Profiles[0].Score, rep.NAB.Profiles[1].Score, rep.NAB.Profiles[2].Score)
	if *out != "" {
		old, err := os.ReadFile(*out)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(*out, docsection.Replace(old, Section, rep.Markdown()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", *out)
	}
	return nil
}

// command is the command line that regenerates the report (with the
// corpora at their default places), with the flags that differ from their
// defaults.
func command(fs *flag.FlagSet) string {
	parts := []string{"go run ./tools/cmd/pulse-nab"}
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "results", "python", "nab", "asd": // where things are, not what is measured
			return
		}
		if f.Value.String() != f.DefValue || f.Name == "out" {
			parts = append(parts, "-"+f.Name+" "+f.Value.String())
		}
	})
	return strings.Join(parts, " ")
}
