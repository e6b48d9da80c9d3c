// Package promtext reads the Prometheus text exposition format (what the
// services serve on /prometheus) into flat samples, for tests and
// development tools: parsing is github.com/prometheus/common/expfmt's,
// histograms and summaries come out as their _bucket, _sum, _count (and
// quantile) series.
package promtext

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one series' value.
type Sample struct {
	Name   string
	Labels map[string]string // without the name; empty when none
	Value  float64
}

// Metrics is a parsed exposition, ordered by name; a name's samples are
// in the exposition's order.
type Metrics []Sample

// Parse reads an exposition in the text format (timestamps are dropped).
func Parse(r io.Reader) (Metrics, error) {
	// UTF-8 names are a superset of the legacy ones the services use.
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out Metrics
	for _, f := range fams {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, f)
		if err != nil {
			return nil, err
		}
		for _, s := range vec {
			smp := Sample{Name: string(s.Metric[model.MetricNameLabel]), Labels: map[string]string{}, Value: float64(s.Value)}
			for k, v := range s.Metric {
				if k != model.MetricNameLabel {
					smp.Labels[string(k)] = string(v)
				}
			}
			out = append(out, smp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Scrape GETs url (a /prometheus endpoint) with c and parses the page.
func Scrape(ctx context.Context, c *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return m, nil
}

// Value returns the value of the sample name{labels} of exposition,
// labels matching exactly (nil: none); ok is false when there is no such
// sample. An exposition that does not parse fails t.
func Value(t testing.TB, exposition, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	m, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, exposition)
	}
	return m.Value(name, labels)
}

// Value returns the value of the sample name{labels}, labels matching
// exactly (nil: none); ok is false when there is no such sample.
func (m Metrics) Value(name string, labels map[string]string) (v float64, ok bool) {
	for _, s := range m {
		if s.Name == name && len(s.Labels) == len(labels) && includes(s.Labels, labels) {
			return s.Value, true
		}
	}
	return 0, false
}

// Sum adds the values of name's samples whose labels include want (nil:
// all of them). It returns 0 when there are none.
func (m Metrics) Sum(name string, want map[string]string) float64 {
	var sum float64
	for _, s := range m {
		if s.Name == name && includes(s.Labels, want) {
			sum += s.Value
		}
	}
	return sum
}

// Has reports whether name has at least one sample.
func (m Metrics) Has(name string) bool {
	for _, s := range m {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Bucket is one cumulative histogram bucket: Count observations were at
// most UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Buckets returns histogram name's cumulative buckets (its "name_bucket"
// series), added up over every other label, in increasing bound order.
func (m Metrics) Buckets(name string) []Bucket { return m.BucketsWhere(name, nil) }

// BucketsWhere is Buckets of the series whose labels include want.
func (m Metrics) BucketsWhere(name string, want map[string]string) []Bucket {
	byLE := map[float64]float64{}
	for _, s := range m {
		if s.Name != name+"_bucket" || !includes(s.Labels, want) {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels[model.BucketLabel], 64)
		if err != nil {
			continue
		}
		byLE[le] += s.Value
	}
	out := make([]Bucket, 0, len(byLE))
	for le, c := range byLE {
		out = append(out, Bucket{UpperBound: le, Count: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpperBound < out[j].UpperBound })
	return out
}

// includes reports whether every label of want has its value in l (an
// empty value matches a missing label, as in Prometheus).
func includes(l, want map[string]string) bool {
	for k, v := range want {
		if l[k] != v {
			return false
		}
	}
	return true
}
