// Package stream encodes metrics as Redis stream entries and back.
//
// An entry has five short fields — d (device id), c (cpu), r (rps),
// t (metric timestamp, Unix seconds) and rt (receipt, Unix nanoseconds) —
// the same names in every entry, so Redis stores them once per stream node.
// Numbers are written with strconv's shortest exact form and so round-trip
// bit for bit.
package stream

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/pulse-iot/pulse/internal/metric"
)

// Event is one metric as it travels from ingest to the analyzers.
type Event struct {
	DeviceID  string
	CPU       float64
	RPS       float64
	Timestamp float64 // the metric's own time, Unix seconds
	Receipt   int64   // when ingest received it, Unix nanoseconds
}

// Values returns the entry's fields and values for XADD.
func (e Event) Values() []string {
	return []string{
		"d", e.DeviceID,
		"c", strconv.FormatFloat(e.CPU, 'g', -1, 64),
		"r", strconv.FormatFloat(e.RPS, 'g', -1, 64),
		"t", strconv.FormatFloat(e.Timestamp, 'g', -1, 64),
		"rt", strconv.FormatInt(e.Receipt, 10),
	}
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
	if e.CPU, err = num(values, "c"); err != nil {
		return Event{}, err
	}
	if e.CPU < 0 || e.CPU > 100 {
		return Event{}, fmt.Errorf("%w: cpu %v out of range", ErrMalformed, e.CPU)
	}
	if e.RPS, err = num(values, "r"); err != nil {
		return Event{}, err
	}
	// Above metric.MaxRPS only an ingest older than the bound wrote it:
	// dead-lettered, kept for inspection, never applied to a window.
	if e.RPS < 0 || e.RPS > metric.MaxRPS {
		return Event{}, fmt.Errorf("%w: rps %v out of range", ErrMalformed, e.RPS)
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
	if len(values) != 5 {
		return Event{}, fmt.Errorf("%w: %d fields, want 5", ErrMalformed, len(values))
	}
	return e, nil
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
