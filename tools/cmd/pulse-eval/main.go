// Command pulse-eval measures the anomaly detectors on labelled synthetic
// data and writes the accuracy report (Markdown) and its plot (SVG):
//
//	go run ./tools/cmd/pulse-eval -out docs/ACCURACY.md -plot docs/accuracy.svg
//
// The output depends only on the flags: running it twice gives the same
// bytes. With -check it fails when the default detector misses a target.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulse-iot/pulse/internal/cmdmain"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/tools/docsection"
	"github.com/pulse-iot/pulse/tools/eval"
	"github.com/pulse-iot/pulse/tools/synth"
)

func main() {
	cmdmain.Run("pulse-eval", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pulse-eval", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		seed       = fs.Uint64("seed", 1, "random seed of the synthetic data")
		holdout    = fs.Uint64("holdout", 2, "second seed reported beside the first (0: none)")
		seeds      = fs.Int("seeds", 10, "seeds seed, seed+1, … over which the spread of the targets is reported (0: none)")
		out        = fs.String("out", "docs/ACCURACY.md", "Markdown report to write (\"\": none)")
		plot       = fs.String("plot", "docs/accuracy.svg", "SVG plot to write (\"\": none)")
		devices    = fs.Int("devices", 20, "devices per scenario")
		events     = fs.Int("events", 2000, "values per device and signal")
		window     = fs.Int("window", 50, "WINDOW_SIZE")
		minSamples = fs.Int("min-samples", 10, "MIN_SAMPLES")
		threshold  = fs.Float64("threshold", 2.0, "Z_THRESHOLD")
		dets       = fs.String("detectors", strings.Join(detector.Names, ","), "detectors to compare, comma-separated")
		check      = fs.Bool("check", false, "fail when the default detector misses a target")
		study      = fs.Bool("study", false, "print the estimator study behind the robust detector (design seeds 101 and 102) and write nothing")
	)
	if ok, err := cmdmain.ParseFlags(fs, args); !ok {
		return err
	}
	if *devices < 1 || *events < 1 {
		return errors.New("-devices and -events must be at least 1")
	}
	if *study {
		rows, err := eval.Study(ctx, []uint64{101, 102}, *devices, *events)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, eval.StudyMarkdown(rows))
		return err
	}
	opts := eval.Options{
		Seed:       *seed,
		Devices:    *devices,
		Events:     *events,
		Params:     detector.Params{WindowSize: *window, MinSamples: *minSamples, Threshold: *threshold},
		Detectors:  strings.Split(*dets, ","),
		Scenarios:  synth.Scenarios(),
		Thresholds: eval.DefaultThresholds(),
	}
	primary, err := eval.Run(ctx, opts)
	if err != nil {
		return err
	}
	rep := eval.Report{Primary: primary, Command: command(fs)}
	if *holdout != 0 {
		o := opts
		o.Seed = *holdout
		if rep.Holdout, err = eval.Run(ctx, o); err != nil {
			return err
		}
	}

	for i := 0; i < *seeds; i++ {
		s := *seed + uint64(i)
		switch {
		case s == primary.Options.Seed:
			rep.Spread = append(rep.Spread, primary)
		case rep.Holdout != nil && s == rep.Holdout.Options.Seed:
			rep.Spread = append(rep.Spread, rep.Holdout)
		default:
			o := opts
			o.Seed = s
			res, err := eval.Run(ctx, o)
			if err != nil {
				return err
			}
			rep.Spread = append(rep.Spread, res)
		}
	}

	if *plot != "" {
		if err := writeFile(*plot, eval.SVG(primary)); err != nil {
			return err
		}
		if *out != "" {
			rel, err := filepath.Rel(filepath.Dir(*out), *plot)
			if err != nil {
				rel = *plot
			}
			rep.PlotPath = filepath.ToSlash(rel)
		}
	}
	if *out != "" {
		doc := rep.Markdown()
		// The real-data section (make nab) shares the file: keep it.
		if old, err := os.ReadFile(*out); err == nil {
			if sec := docsection.Extract(old, "nab"); sec != nil {
				doc = append(append(bytes.TrimRight(doc, "\n"), "\n\n"...), sec...)
				doc = append(doc, '\n')
			}
		}
		if err := writeFile(*out, doc); err != nil {
			return err
		}
	}

	missed := 0
	for _, res := range []*eval.Result{primary, rep.Holdout} {
		if res == nil {
			continue
		}
		fmt.Fprintf(stdout, "seed %d, %s, threshold %g:\n", res.Options.Seed, eval.TargetDetector, opts.Params.Threshold)
		for _, c := range eval.Checks(res, eval.TargetDetector) {
			fmt.Fprintf(stdout, "  %s\n", c)
			if !c.Met {
				missed++
			}
		}
	}
	if len(rep.Spread) > 0 {
		fmt.Fprintf(stdout, "over seeds %d–%d:\n", *seed, *seed+uint64(len(rep.Spread))-1)
		for _, s := range eval.Spread(rep.Spread, eval.TargetDetector) {
			fmt.Fprintf(stdout, "  %s: %s–%s, met on %d of %d\n", s.What, pctS(s.Min), pctS(s.Max), s.Met, s.Seeds)
		}
	}
	if *out != "" {
		fmt.Fprintf(stdout, "wrote %s\n", *out)
	}
	if *plot != "" {
		fmt.Fprintf(stdout, "wrote %s\n", *plot)
	}
	if *check && missed > 0 {
		return fmt.Errorf("%d target(s) not met", missed)
	}
	return nil
}

// command is the command line that regenerates the report, with every flag
// that differs from its default.
func command(fs *flag.FlagSet) string {
	parts := []string{"go run ./tools/cmd/pulse-eval"}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "check" || f.Name == "study" {
			return
		}
		if f.Value.String() != f.DefValue || f.Name == "out" || f.Name == "plot" {
			parts = append(parts, "-"+f.Name+" "+f.Value.String())
		}
	})
	return strings.Join(parts, " ")
}

func pctS(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

func writeFile(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, data, 0o644)
}
