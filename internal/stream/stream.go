// Package stream encodes metrics as Redis stream entries and back.
//
// An entry has short fields — d (device id), c (cpu), r (rps), t (metric
// timestamp, Unix seconds) and rt (receipt, Unix nanoseconds) — the same
// names in every entry, so Redis stores them once per stream node. An
// event with named metrics adds m ("temperature=21.5,battery_v=3.71", in
// the object's order) and may lack c or r; one with tags adds g
// ("site=berlin,model=x1"). Names, tag keys and tag values never hold ','
// or '=', and numbers are written with strconv's shortest exact form, so
// everything round-trips bit for bit. Entries of five fields, all that
// ingest wrote before named metrics, decode as they always did.
package stream

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pulse-iot/pulse/internal/metric"
)

// Event is one metric as it travels from ingest to the analyzers.
type Event struct {
	DeviceID string
	CPU      float64
	RPS      float64
	// NoCPU and NoRPS mark an event of an object that carried named
	// metrics and omitted cpu or rps: that signal has no value in it.
	NoCPU, NoRPS bool
	Timestamp    float64 // the metric's own time, Unix seconds
	Receipt      int64   // when ingest received it, Unix nanoseconds
	Metrics      []metric.Named
	Tags         []metric.Tag // nil: the event says nothing of the device's tags
}

// NewEvent returns the event of a metric ingest accepted at receipt (Unix
// nanoseconds). It shares m's Metrics and Tags.
func NewEvent(m metric.Metric, receipt int64) Event {
	return Event{
		DeviceID:  m.DeviceID,
		CPU:       m.CPU,
		RPS:       m.RPS,
		NoCPU:     m.NoCPU,
		NoRPS:     m.NoRPS,
		Timestamp: m.Timestamp,
		Receipt:   receipt,
		Metrics:   m.Metrics,
		Tags:      m.Tags,
	}
}

// Values returns the entry's fields and values for XADD.
func (e Event) Values() []string {
	v := make([]string, 0, 14)
	v = append(v, "d", e.DeviceID)
	if !e.NoCPU {
		v = append(v, "c", strconv.FormatFloat(e.CPU, 'g', -1, 64))
	}
	if !e.NoRPS {
		v = append(v, "r", strconv.FormatFloat(e.RPS, 'g', -1, 64))
	}
	v = append(v, "t", strconv.FormatFloat(e.Timestamp, 'g', -1, 64), "rt", strconv.FormatInt(e.Receipt, 10))
	if len(e.Metrics) > 0 {
		b := make([]byte, 0, 24*len(e.Metrics))
		for i, m := range e.Metrics {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendPart(b, m.Name)
			b = append(b, '=')
			b = strconv.AppendFloat(b, m.Value, 'g', -1, 64)
		}
		v = append(v, "m", string(b))
	}
	if len(e.Tags) > 0 {
		b := make([]byte, 0, 24*len(e.Tags))
		for i, t := range e.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendPart(b, t.Key)
			b = append(b, '=')
			b = appendPart(b, t.Value)
		}
		v = append(v, "g", string(b))
	}
	return v
}

// appendPart appends a name, tag key or tag value. A ',' (never valid
// in one) is written as ';' (never valid either), so that an invalid
// event cannot encode to the entry of another, valid one: "k=a,b=c" is
// one invalid tag, not two valid ones.
func appendPart(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ',' {
			b = append(b, ';')
		} else {
			b = append(b, c)
		}
	}
	return b
}

// ErrMalformed marks an entry that is not a valid event; the analyzer
// dead-letters such entries instead of retrying them.
var ErrMalformed = errors.New("malformed entry")

// Decode reads an entry as go-redis returns it. Anything that could not
// have come from ingest is ErrMalformed.
func Decode(values map[string]any) (Event, error) {
	var e Event
	var err error
	if e.DeviceID, err = str(values, "d"); err != nil {
		return Event{}, err
	}
	if !validDeviceID(e.DeviceID) {
		return Event{}, fmt.Errorf("%w: invalid device id %q", ErrMalformed, e.DeviceID)
	}
	fields := 3 // d, t, rt
	if raw, ok := values["m"]; ok {
		fields++
		if e.Metrics, err = decodeMetrics(raw); err != nil {
			return Event{}, err
		}
	}
	if raw, ok := values["g"]; ok {
		fields++
		if e.Tags, err = decodeTags(raw); err != nil {
			return Event{}, err
		}
	}
	// cpu and rps may be absent only beside named metrics, as ingest
	// accepts them.
	_, hasCPU := values["c"]
	_, hasRPS := values["r"]
	e.NoCPU, e.NoRPS = !hasCPU && e.Metrics != nil, !hasRPS && e.Metrics != nil
	if !e.NoCPU {
		fields++
		if e.CPU, err = num(values, "c"); err != nil {
			return Event{}, err
		}
		if e.CPU < 0 || e.CPU > 100 {
			return Event{}, fmt.Errorf("%w: cpu %v out of range", ErrMalformed, e.CPU)
		}
	}
	if !e.NoRPS {
		fields++
		if e.RPS, err = num(values, "r"); err != nil {
			return Event{}, err
		}
		// Above metric.MaxRPS only an ingest older than the bound wrote
		// it: dead-lettered, kept for inspection, never applied to a
		// window.
		if e.RPS < 0 || e.RPS > metric.MaxRPS {
			return Event{}, fmt.Errorf("%w: rps %v out of range", ErrMalformed, e.RPS)
		}
	}
	if e.Timestamp, err = num(values, "t"); err != nil {
		return Event{}, err
	}
	s, err := str(values, "rt")
	if err != nil {
		return Event{}, err
	}
	if e.Receipt, err = strconv.ParseInt(s, 10, 64); err != nil {
		return Event{}, fmt.Errorf("%w: field rt: %v", ErrMalformed, err)
	}
	if len(values) != fields {
		return Event{}, fmt.Errorf("%w: %d fields, want %d", ErrMalformed, len(values), fields)
	}
	return e, nil
}

// decodeMetrics reads field m: "name=value,…", at least one and at most
// metric.MaxMetricsLimit pairs, valid names other than cpu and rps, each
// once, finite values.
func decodeMetrics(raw any) ([]metric.Named, error) {
	s, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("%w: field m is %T", ErrMalformed, raw)
	}
	n := strings.Count(s, ",") + 1
	if n > metric.MaxMetricsLimit {
		return nil, fmt.Errorf("%w: field m: %d metrics, at most %d", ErrMalformed, n, metric.MaxMetricsLimit)
	}
	out := make([]metric.Named, 0, n)
	for pair := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(pair, "=")
		if !ok || !metric.ValidName(name) || metric.Reserved(name) {
			return nil, fmt.Errorf("%w: field m: bad metric %q", ErrMalformed, pair)
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: field m: %s=%q is not a finite number", ErrMalformed, name, val)
		}
		for _, m := range out {
			if m.Name == name {
				return nil, fmt.Errorf("%w: field m: %s twice", ErrMalformed, name)
			}
		}
		out = append(out, metric.Named{Name: name, Value: f})
	}
	return out, nil
}

// decodeTags reads field g: "key=value,…", at least one and at most
// metric.MaxTags pairs, valid keys (each once) and values.
func decodeTags(raw any) ([]metric.Tag, error) {
	s, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("%w: field g is %T", ErrMalformed, raw)
	}
	if n := strings.Count(s, ",") + 1; n > metric.MaxTags {
		return nil, fmt.Errorf("%w: field g: %d tags, at most %d", ErrMalformed, n, metric.MaxTags)
	}
	var out []metric.Tag
	for pair := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || !metric.ValidTagKey(k) || !metric.ValidTagValue(v) {
			return nil, fmt.Errorf("%w: field g: bad tag %q", ErrMalformed, pair)
		}
		for _, t := range out {
			if t.Key == k {
				return nil, fmt.Errorf("%w: field g: %s twice", ErrMalformed, k)
			}
		}
		out = append(out, metric.Tag{Key: k, Value: v})
	}
	return out, nil
}

func str(values map[string]any, field string) (string, error) {
	v, ok := values[field]
	if !ok {
		return "", fmt.Errorf("%w: field %s missing", ErrMalformed, field)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%w: field %s is %T", ErrMalformed, field, v)
	}
	return s, nil
}

func num(values map[string]any, field string) (float64, error) {
	s, err := str(values, field)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: field %s=%q is not a finite number", ErrMalformed, field, s)
	}
	return f, nil
}

// validDeviceID mirrors the ingest rule: 1–128 characters of [A-Za-z0-9._:-].
func validDeviceID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
