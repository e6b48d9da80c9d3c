package realdata

import (
	"context"
	"math"
	"slices"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/tools/nab"
)

// Corpus is a labelled corpus ready to score: one Trace per signal, and
// for each scored file the signals whose alerts are its detections.
type Corpus struct {
	Name     string
	Files    []nab.File // Scores empty: filled per alert configuration
	Category []string   // per file
	Signals  [][]Trace  // per file
	Windows  int        // labelled windows, for normalisation
	// Baselines are the null detector's raw totals per profile name.
	Baselines map[string]float64
	// Offsets: per file, the index of its first scored row in its traces
	// (ASD's training part comes first).
	Offsets []int
}

// NABCorpus runs every NAB series through the pipeline: the series' value
// as one signal of its own device, with the series' own timestamps.
func NABCorpus(ctx context.Context, c *nab.Corpus, cfg Config) (*Corpus, error) {
	out := &Corpus{Name: "NAB", Windows: c.Windows, Baselines: c.Baselines}
	for _, s := range c.Series {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		times := make([]float64, len(s.Times))
		for i, t := range s.Times {
			times[i] = float64(t.Unix())
		}
		out.Files = append(out.Files, nab.FileOf(s, nil))
		out.Category = append(out.Category, s.Category())
		out.Signals = append(out.Signals, []Trace{RunSignal(cfg, times, s.Values)})
		out.Offsets = append(out.Offsets, 0)
	}
	return out, nil
}

// Detections are the corpus's files with the alert openings under p as
// their anomaly scores.
func (c *Corpus) Detections(p alert.Params) []nab.File {
	files := slices.Clone(c.Files)
	for i := range files {
		var dev []float64
		for _, tr := range c.Signals[i] {
			dev = Openings(dev, tr, p)
		}
		files[i].Scores = dev[c.Offsets[i]:]
	}
	return files
}

// Scores is a corpus's NAB results under one alert configuration.
type Scores struct {
	Alert      alert.Params
	Profiles   []nab.Result // nab.Profiles order
	Categories []string
	ByCategory [][]float64 // [category][profile], normalised at each profile's threshold
	Alerts     int         // alerts opened in the scored part
}

// Score scores the corpus's alerts under p with each profile.
func (c *Corpus) Score(p alert.Params) Scores {
	files := c.Detections(p)
	s := Scores{Alert: p}
	for _, f := range files {
		for _, v := range f.Scores {
			if v > 0 {
				s.Alerts++
			}
		}
	}
	for _, prof := range nab.Profiles {
		base, ok := c.Baselines[prof.Name]
		if !ok {
			base = nullTotal(files, prof)
		}
		s.Profiles = append(s.Profiles, nab.Score(files, prof, base, c.Windows))
	}
	idx := map[string][]int{}
	for i, cat := range c.Category {
		if _, ok := idx[cat]; !ok {
			s.Categories = append(s.Categories, cat)
		}
		idx[cat] = append(idx[cat], i)
	}
	for _, cat := range s.Categories {
		row := make([]float64, len(s.Profiles))
		for j, r := range s.Profiles {
			row[j] = r.Subset(files, idx[cat])
		}
		s.ByCategory = append(s.ByCategory, row)
	}
	return s
}

func nullTotal(files []nab.File, p nab.Profile) float64 {
	var t float64
	for _, f := range files {
		t += nab.NullRow(f, p.Cost).Score
	}
	return t
}

// Sweep is the standard profile's score for each alert threshold.
type Sweep struct {
	Thresholds []float64
	Standard   []float64
	Best       int // index of the highest score (the lowest threshold on ties)
}

// SweepThresholds scores the corpus's alerts for each threshold (the
// other alert knobs as in p) with NAB's standard profile.
func (c *Corpus) SweepThresholds(p alert.Params, thresholds []float64) Sweep {
	sw := Sweep{Thresholds: thresholds}
	best := math.Inf(-1)
	for i, th := range thresholds {
		q := p
		q.Threshold = th
		files := c.Detections(q)
		base, ok := c.Baselines[nab.Standard.Name]
		if !ok {
			base = nullTotal(files, nab.Standard)
		}
		v := nab.Score(files, nab.Standard, base, c.Windows).Score
		sw.Standard = append(sw.Standard, v)
		if v > best {
			best, sw.Best = v, i
		}
	}
	return sw
}
