package eval

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// SVG renders the threshold sweep of r as two panels, recall and
// false-positive rate against the threshold, for the rows SweepSeries
// picks. The output is plain SVG written by hand and deterministic.
func SVG(r *Result) []byte {
	const (
		width, height  = 960, 470
		panelW, panelH = 380, 300
		left1, left2   = 70, 550
		top            = 50
		legendTop      = top + panelH + 50
		fontFamily     = "Helvetica, Arial, sans-serif"
	)
	series := SweepSeries(r)
	ts := r.Options.Thresholds
	var b bytes.Buffer
	f := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if len(ts) == 0 {
		f(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>` + "\n")
		return b.Bytes()
	}
	tMin, tMax := ts[0], ts[0]
	for _, t := range ts {
		tMin, tMax = math.Min(tMin, t), math.Max(tMax, t)
	}
	if tMax == tMin {
		tMax = tMin + 1
	}
	// The FPR axis reaches the largest rate shown, rounded up to 2 points.
	fprMax := GaussianTail(tMin)
	for _, s := range series {
		for _, c := range s.Sweep {
			if v := c.FPR(); !math.IsNaN(v) {
				fprMax = math.Max(fprMax, v)
			}
		}
	}
	// Five grid steps of a whole number of points.
	fprMax = 5 * math.Ceil(fprMax*100/5-1e-9) / 100

	f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12">`+"\n", width, height, width, height, fontFamily)
	f(`<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	f(`<text x="%d" y="22" font-size="15" font-weight="bold">Recall and false-positive rate against the threshold (window %d, min samples %d, seed %d)</text>`+"\n",
		left1, r.Options.Params.WindowSize, r.Options.Params.MinSamples, r.Options.Seed)

	type panel struct {
		left  float64
		title string
		yMax  float64
		value func(c Counts) float64
		lines []float64 // target lines (fractions)
	}
	panels := []panel{
		{left1, "Recall (anomalies flagged)", 1, Counts.Recall, []float64{MinRecall}},
		{left2, "False-positive rate (normal values flagged)", fprMax, Counts.FPR, []float64{MaxFPR}},
	}
	x := func(p panel, t float64) float64 { return p.left + (t-tMin)/(tMax-tMin)*panelW }
	y := func(p panel, v float64) float64 { return top + panelH - v/p.yMax*panelH }
	dashes := []string{"", "7 4", "2 3", "10 3 2 3"}

	for pi, p := range panels {
		f(`<text x="%.1f" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", p.left, top-10, html.EscapeString(p.title))
		f(`<rect x="%.1f" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", p.left, top, panelW, panelH)
		// Horizontal grid and labels: 5 steps.
		for i := 0; i <= 5; i++ {
			v := p.yMax * float64(i) / 5
			yy := y(p, v)
			f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", p.left, yy, p.left+panelW, yy)
			f(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", p.left-6, yy+4, axisPct(v))
		}
		// Vertical ticks at every threshold.
		for _, t := range ts {
			xx := x(p, t)
			f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>`+"\n", xx, top+panelH, xx, top+panelH+5)
			f(`<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", xx, top+panelH+18, t)
		}
		f(`<text x="%.1f" y="%d" text-anchor="middle">threshold (z)</text>`+"\n", p.left+panelW/2, top+panelH+36)
		// The configured threshold and the targets.
		if th := r.Options.Params.Threshold; th >= tMin && th <= tMax {
			f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="3 3"/>`+"\n", x(p, th), top, x(p, th), top+panelH)
			f(`<text x="%.1f" y="%d" fill="#777">Z_THRESHOLD %g</text>`+"\n", x(p, th)+4, top+panelH*35/100, th)
		}
		for _, v := range p.lines {
			if v <= p.yMax {
				f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2ca02c" stroke-dasharray="5 3"/>`+"\n", p.left, y(p, v), p.left+panelW, y(p, v))
				f(`<text x="%.1f" y="%.1f" fill="#2ca02c" text-anchor="end">target %s</text>`+"\n", p.left+panelW-4, y(p, v)-4, axisPct(v))
			}
		}
		if pi == 1 { // the Gaussian tail, what a perfect rule flags on noise
			f(`<polyline fill="none" stroke="#555" stroke-width="1" stroke-dasharray="1 3" points="`)
			for i := 0; i <= 100; i++ {
				t := tMin + (tMax-tMin)*float64(i)/100
				f("%.1f,%.1f ", x(p, t), y(p, math.Min(GaussianTail(t), p.yMax)))
			}
			f(`"/>` + "\n")
		}
		for si, s := range series {
			if pi == 0 && !s.HasAnomalies {
				continue
			}
			f(`<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="`, detColor(s.Detector), dashes[signalIndex(series, si)%len(dashes)])
			for i, t := range ts {
				v := p.value(s.Sweep[i])
				if math.IsNaN(v) {
					continue
				}
				f("%.1f,%.1f ", x(p, t), y(p, math.Min(v, p.yMax)))
			}
			f(`"/>` + "\n")
		}
	}

	// Legend: a row per signal, a column per detector, then the Gaussian tail.
	rows := 0
	for si, s := range series {
		col, row := detIndex(r.Options.Detectors, s.Detector), signalIndex(series, si)
		rows = max(rows, row+1)
		lx, ly := float64(left1+col*300), float64(legendTop+row*20)
		f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", lx, ly, lx+30, ly, detColor(s.Detector), dashes[signalIndex(series, si)%len(dashes)])
		f(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+36, ly+4, html.EscapeString(fmt.Sprintf("%s: %s/%s", s.Detector, s.Scenario, s.Signal)))
	}
	lx, ly := float64(left1), float64(legendTop+rows*20)
	f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="1 3"/>`+"\n", lx, ly, lx+30, ly)
	f(`<text x="%.1f" y="%.1f">Gaussian tail P(|Z| &gt; t)</text>`+"\n", lx+36, ly+4)
	f("</svg>\n")
	return b.Bytes()
}

// signalIndex numbers the distinct scenario/signal pairs of series in order
// of first appearance; the number picks the dash pattern.
func signalIndex(series []Row, i int) int {
	var seen []string
	for j := 0; j <= i; j++ {
		key := series[j].Scenario + "/" + series[j].Signal
		found := -1
		for k, s := range seen {
			if s == key {
				found = k
			}
		}
		if found < 0 {
			seen = append(seen, key)
			found = len(seen) - 1
		}
		if j == i {
			return found
		}
	}
	return 0
}

func detIndex(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return 0
}

func detColor(name string) string {
	switch name {
	case "robust":
		return "#1f77b4"
	case "classic":
		return "#d62728"
	}
	return "#7f7f7f"
}

func axisPct(v float64) string {
	s := fmt.Sprintf("%.1f", 100*v)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + "%"
}
