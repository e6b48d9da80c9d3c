package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Sample is one line of the Prometheus text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is a scraped /prometheus page.
type Metrics []Sample

// Scrape GETs url and parses it.
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
	m, err := ParseText(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return m, nil
}

// ParseText parses the Prometheus text exposition format (version 0.0.4):
// comments are skipped, timestamps ignored.
func ParseText(r io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		smp, err := parseLine(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, smp)
	}
	return out, sc.Err()
}

func parseLine(s string) (Sample, error) {
	var smp Sample
	i := strings.IndexAny(s, "{ \t")
	if i <= 0 {
		return smp, fmt.Errorf("no value in %q", s)
	}
	smp.Name, s = s[:i], s[i:]
	if s[0] == '{' {
		smp.Labels = map[string]string{}
		s = s[1:]
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				return smp, fmt.Errorf("unterminated labels of %s", smp.Name)
			}
			if s[0] == '}' {
				s = s[1:]
				break
			}
			eq := strings.IndexByte(s, '=')
			if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
				return smp, fmt.Errorf("bad label in %s", smp.Name)
			}
			name := strings.TrimSpace(s[:eq])
			val, rest, err := labelValue(s[eq+2:])
			if err != nil {
				return smp, fmt.Errorf("label %s of %s: %w", name, smp.Name, err)
			}
			smp.Labels[name] = val
			s = rest
		}
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return smp, fmt.Errorf("no value for %s", smp.Name)
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return smp, fmt.Errorf("value of %s: %w", smp.Name, err)
	}
	smp.Value = v
	return smp, nil
}

// labelValue reads an escaped label value up to its closing quote.
func labelValue(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("unterminated escape")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated value")
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// matches reports whether every label of want has its value in l.
func matches(l, want map[string]string) bool {
	for k, v := range want {
		if l[k] != v {
			return false
		}
	}
	return true
}

// Sum adds the values of name's samples whose labels include want (nil:
// all of them). It returns 0 when there are none.
func (m Metrics) Sum(name string, want map[string]string) float64 {
	var s float64
	for _, smp := range m {
		if smp.Name == name && matches(smp.Labels, want) {
			s += smp.Value
		}
	}
	return s
}

// Has reports whether name has at least one sample.
func (m Metrics) Has(name string) bool {
	for _, smp := range m {
		if smp.Name == name {
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

// Buckets returns histogram name's cumulative buckets ("name_bucket"),
// added up over every other label, in increasing bound order.
func (m Metrics) Buckets(name string) []Bucket { return m.BucketsWhere(name, nil) }

// BucketsWhere is Buckets of the series whose labels include want.
func (m Metrics) BucketsWhere(name string, want map[string]string) []Bucket {
	byLE := map[float64]float64{}
	for _, smp := range m {
		if smp.Name != name+"_bucket" || !matches(smp.Labels, want) {
			continue
		}
		le, err := parseValue(smp.Labels["le"])
		if err != nil {
			continue
		}
		byLE[le] += smp.Value
	}
	out := make([]Bucket, 0, len(byLE))
	for le, c := range byLE {
		out = append(out, Bucket{UpperBound: le, Count: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpperBound < out[j].UpperBound })
	return out
}

// AddBuckets returns a + b, bucket by bucket (same bounds, e.g. the same
// histogram of two processes); a nil a gives b.
func AddBuckets(a, b []Bucket) []Bucket {
	if a == nil {
		return append([]Bucket(nil), b...)
	}
	out := append([]Bucket(nil), a...)
	for i := range out {
		if i < len(b) && b[i].UpperBound == out[i].UpperBound {
			out[i].Count += b[i].Count
		}
	}
	return out
}

// SubBuckets returns after - before, bucket by bucket: the observations
// made between two scrapes of the same histogram.
func SubBuckets(after, before []Bucket) []Bucket {
	out := append([]Bucket(nil), after...)
	for i := range out {
		for _, b := range before {
			if b.UpperBound == out[i].UpperBound {
				out[i].Count -= b.Count
			}
		}
	}
	return out
}

// BucketTotal returns the number of observations (the +Inf bucket's count).
func BucketTotal(b []Bucket) float64 {
	if len(b) == 0 {
		return 0
	}
	return b[len(b)-1].Count
}

// BucketFraction returns the fraction of observations at most le, where
// le is one of the bucket bounds (else the next smaller bound is used).
func BucketFraction(b []Bucket, le float64) float64 {
	total := BucketTotal(b)
	if total == 0 {
		return 0
	}
	var c float64
	for _, bk := range b {
		if bk.UpperBound <= le {
			c = bk.Count
		}
	}
	return c / total
}

// BucketQuantile estimates quantile q from cumulative buckets as
// Prometheus's histogram_quantile does: linear interpolation inside the
// bucket holding rank q·n, the lowest bucket starting at 0, and the upper
// bound of the highest finite bucket when the rank falls in +Inf. It
// returns NaN without observations.
func BucketQuantile(q float64, b []Bucket) float64 {
	total := BucketTotal(b)
	if total == 0 || len(b) == 0 {
		return math.NaN()
	}
	rank := q * total
	var prevBound, prevCount float64
	for i, bk := range b {
		if bk.Count >= rank {
			if math.IsInf(bk.UpperBound, 1) {
				if i == 0 {
					return math.NaN()
				}
				return b[i-1].UpperBound
			}
			in := bk.Count - prevCount
			if in <= 0 {
				return bk.UpperBound
			}
			return prevBound + (bk.UpperBound-prevBound)*(rank-prevCount)/in
		}
		prevBound, prevCount = bk.UpperBound, bk.Count
	}
	return b[len(b)-1].UpperBound
}
