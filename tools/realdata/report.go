package realdata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/pulse-iot/pulse/tools/nab"
)

// Options say what a run scores.
type Options struct {
	NABDir     string
	ASDDir     string // "": no ASD
	Config     Config
	Thresholds []float64 // alert thresholds swept for the standard profile
	ResultsDir string    // NAB result files are written here
	Gaussian   bool      // also score NAB's windowed Gaussian, as a check of the harness
	Python     string    // a python3 with pandas: check the port against NAB's run.py ("": no)
	Log        io.Writer // progress
}

// DefaultThresholds are the alert thresholds make nab sweeps: 0.05 to 1
// in steps of 0.01, so the best is already rounded.
func DefaultThresholds() []float64 {
	var ts []float64
	for i := 5; i <= 100; i++ {
		ts = append(ts, float64(i)/100)
	}
	return ts
}

// Report is what a run found.
type Report struct {
	Options    Options
	Command    string
	NAB        Scores
	Sweep      Sweep
	Scoreboard map[string]map[string]float64
	ASD        *Scores
	ASDSweep   *Sweep
	ASDSignals int
	ASDWindows int
	Gaussian   *[3]float64    // the port's scores of the windowed Gaussian
	Python     *PythonCheck   // NAB's run.py on the same files
	Files      map[string]int // alerts per NAB file in the scored part
	Windows    map[string]int // windows per NAB category
	Series     map[string]int // series per NAB category
}

// PythonCheck compares the port with NAB's own scorer.
type PythonCheck struct {
	Detectors []string
	Python    map[string]map[string]float64 // detector → profile → run.py's score
	Port      map[string]map[string]float64
}

// MaxDiff is the largest difference between the two.
func (p *PythonCheck) MaxDiff() float64 {
	var d float64
	for det, m := range p.Port {
		for prof, v := range m {
			d = max(d, math.Abs(v-p.Python[det][prof]))
		}
	}
	return d
}

// Run scores Pulse's alerts on NAB (and ASD when given).
func Run(ctx context.Context, o Options) (*Report, error) {
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	if err := o.Config.Alert.Validate(); err != nil {
		return nil, err
	}
	corpus, err := nab.Load(o.NABDir)
	if err != nil {
		return nil, err
	}
	rep := &Report{Options: o, Scoreboard: corpus.Scoreboard, Files: map[string]int{}, Windows: map[string]int{}, Series: map[string]int{}}
	logf("NAB: %d series, %d windows", len(corpus.Series), corpus.Windows)
	c, err := NABCorpus(ctx, corpus, o.Config)
	if err != nil {
		return nil, err
	}
	if len(o.Thresholds) > 0 {
		rep.Sweep = c.SweepThresholds(o.Config.Alert, o.Thresholds)
		logf("NAB: best alert threshold %.2f (standard %.2f)", rep.Sweep.Thresholds[rep.Sweep.Best], rep.Sweep.Standard[rep.Sweep.Best])
	}
	rep.NAB = c.Score(o.Config.Alert)
	files := c.Detections(o.Config.Alert)
	for i, s := range corpus.Series {
		rep.Series[s.Category()]++
		rep.Windows[s.Category()] += len(s.Windows)
		n := 0
		for j, v := range files[i].Scores {
			if v > 0 && float64(j) >= nab.ProbationLength(len(files[i].Scores)) {
				n++
			}
		}
		rep.Files[s.Name] = n
	}
	if o.ResultsDir != "" {
		for i, s := range corpus.Series {
			if err := nab.WriteResults(o.ResultsDir, "pulse", s, files[i].Scores); err != nil {
				return nil, err
			}
		}
		logf("NAB: result files in %s", filepath.Join(o.ResultsDir, "pulse"))
	}
	var gaussian []nab.File
	if o.Gaussian {
		for _, s := range corpus.Series {
			gaussian = append(gaussian, nab.FileOf(s, nab.WindowedGaussian(s.Values)))
		}
		var g [3]float64
		for i, p := range corpus.Profiles {
			g[i] = nab.Score(gaussian, p, corpus.Baselines[p.Name], corpus.Windows).Score
		}
		rep.Gaussian = &g
		logf("NAB: windowed Gaussian %.2f / %.2f / %.2f", g[0], g[1], g[2])
	}
	if o.Python != "" {
		if rep.Python, err = pythonCheck(ctx, o, corpus, rep, files, gaussian); err != nil {
			return nil, err
		}
		logf("NAB: run.py and the port differ by at most %.2g", rep.Python.MaxDiff())
	}
	if o.ASDDir != "" {
		servers, err := LoadASD(o.ASDDir)
		if err != nil {
			return nil, err
		}
		a, err := ASDCorpus(ctx, servers, o.Config)
		if err != nil {
			return nil, err
		}
		s := a.Score(o.Config.Alert)
		rep.ASD = &s
		rep.ASDWindows = a.Windows
		for _, sv := range servers {
			rep.ASDSignals += len(sv.Metrics)
		}
		if len(o.Thresholds) > 0 {
			sw := a.SweepThresholds(o.Config.Alert, o.Thresholds)
			rep.ASDSweep = &sw
		}
		logf("ASD: %d servers, %d windows: %.2f / %.2f / %.2f", len(servers), a.Windows,
			s.Profiles[0].Score, s.Profiles[1].Score, s.Profiles[2].Score)
	}
	return rep, nil
}

// ErrNoPandas is returned when the python given cannot import pandas.
var ErrNoPandas = errors.New("python3 without pandas (Debian: apt-get install -y python3-pandas)")

func copyTree(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
