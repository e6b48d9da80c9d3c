// Package metric decodes, validates and encodes the measurements devices
// send to the ingest service.
//
// Decode is a strict, allocation-lean decoder for POST /metrics bodies: a
// hand-rolled JSON scanner (no reflection, no encoding/json) that checks the
// full JSON grammar, rejects unknown and duplicate fields, and reports every
// validation problem of a body with its metric index and field name.
package metric

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// Metric is one validated, normalized measurement.
type Metric struct {
	DeviceID string
	CPU      float64
	RPS      float64
	// NoCPU and NoRPS mark an object that carried named metrics and
	// omitted cpu or rps: that signal has no value in it.
	NoCPU, NoRPS bool
	Timestamp    float64 // Unix seconds (fractional allowed)
	Metrics      []Named // in the object's order; nil when there are none
	Tags         []Tag   // in the object's order; nil when there are none
}

// Format selects how Decode splits a body into metrics.
type Format int

const (
	JSON   Format = iota // one object, or an array of objects
	NDJSON               // one object per line; blank lines (incl. "\r\n" endings) ignored
)

// Kind classifies a rejected body.
type Kind int

const (
	Invalid  Kind = iota // -> HTTP 400
	TooLarge             // -> HTTP 413 (more than maxBatch metrics)
)

// String returns "invalid" or "too large".
func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case TooLarge:
		return "too large"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxDetails is the most FieldErrors an Error carries.
const MaxDetails = 100

// MaxDepth is the deepest nesting of arrays and objects Decode accepts
// (the top-level array or object counts as 1).
const MaxDepth = 64

// MaxDeviceIDLen is the longest device_id accepted.
const MaxDeviceIDLen = 128

// FieldError locates one problem. Index is the metric's position in the
// batch (0 for a single object; for NDJSON, the index among non-blank
// lines). Field is "" when the problem is not one field's (e.g. malformed
// JSON); an unknown field uses the unknown field's name.
type FieldError struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// Error is returned for every rejected body.
type Error struct {
	Kind    Kind
	Message string       // short summary, e.g. "invalid metrics", "malformed JSON", "batch too large"
	Details []FieldError // may be empty; at most MaxDetails entries
}

// Error returns the summary followed by the first detail, e.g.
// `invalid metrics: index 0: field "cpu": must be between 0 and 100 (and 2 more)`.
func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	d := e.Details[0]
	b := make([]byte, 0, len(e.Message)+len(d.Field)+len(d.Reason)+48)
	b = append(b, e.Message...)
	b = append(b, ": index "...)
	b = strconv.AppendInt(b, int64(d.Index), 10)
	if d.Field != "" {
		b = append(b, ": field "...)
		b = strconv.AppendQuote(b, d.Field)
	}
	b = append(b, ": "...)
	b = append(b, d.Reason...)
	if n := len(e.Details) - 1; n > 0 {
		b = append(b, " (and "...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, " more)"...)
	}
	return string(b)
}

// idChar reports which bytes may appear in a device ID: [A-Za-z0-9._:-].
var idChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:-" {
		t[c] = true
	}
	return t
}()

// ValidDeviceID reports whether s is 1–128 characters of [A-Za-z0-9._:-].
func ValidDeviceID(s string) bool {
	if len(s) == 0 || len(s) > MaxDeviceIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChar[s[i]] {
			return false
		}
	}
	return true
}

func validDeviceIDBytes(b []byte) bool {
	if len(b) == 0 || len(b) > MaxDeviceIDLen {
		return false
	}
	for _, c := range b {
		if !idChar[c] {
			return false
		}
	}
	return true
}

// AppendJSON appends the normalized JSON object
// {"device_id":"…","cpu":…,"rps":…,"timestamp":…} to dst, without cpu or
// rps when NoCPU or NoRPS is set, and with "metrics":{"name":…,…} and
// "tags":{"key":"…",…} when there are any.
//
// Numbers are formatted as encoding/json formats float64: the shortest
// representation that round-trips exactly, in plain decimal ('f') for
// magnitudes in [1e-6, 1e21) and zero (so 1234567890 and 50.5, never
// 1.23456789e+09), and in exponent form otherwise. A NaN or infinite value,
// which JSON cannot express and Decode never produces, is written as null.
// A device ID outside the valid set is escaped so the output is always
// valid JSON.
func (m Metric) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"device_id":`...)
	dst = AppendJSONString(dst, m.DeviceID)
	if !m.NoCPU {
		dst = append(dst, `,"cpu":`...)
		dst = appendFloat(dst, m.CPU)
	}
	if !m.NoRPS {
		dst = append(dst, `,"rps":`...)
		dst = appendFloat(dst, m.RPS)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendFloat(dst, m.Timestamp)
	if len(m.Metrics) > 0 {
		dst = append(dst, `,"metrics":{`...)
		for i, n := range m.Metrics {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, n.Name)
			dst = append(dst, ':')
			dst = appendFloat(dst, n.Value)
		}
		dst = append(dst, '}')
	}
	if len(m.Tags) > 0 {
		dst = append(dst, `,"tags":{`...)
		for i, t := range m.Tags {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, t.Key)
			dst = append(dst, ':')
			dst = AppendJSONString(dst, t.Value)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// MarshalJSON returns m.AppendJSON(nil). It fails if a number is NaN or
// infinite.
func (m Metric) MarshalJSON() ([]byte, error) {
	if (!m.NoCPU && !finite(m.CPU)) || (!m.NoRPS && !finite(m.RPS)) || !finite(m.Timestamp) {
		return nil, errors.New("metric: cannot marshal NaN or infinite value")
	}
	size := 64 + len(m.DeviceID)
	for _, n := range m.Metrics {
		if !finite(n.Value) {
			return nil, errors.New("metric: cannot marshal NaN or infinite value")
		}
		size += len(n.Name) + 28
	}
	for _, t := range m.Tags {
		size += len(t.Key) + len(t.Value) + 6
	}
	return m.AppendJSON(make([]byte, 0, size)), nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func appendFloat(dst []byte, f float64) []byte {
	if !finite(f) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-07 to e-7, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it but for HTML characters. Valid device IDs are copied as is; anything else is escaped (control characters, quote, backslash,
// U+2028, U+2029; invalid UTF-8 becomes \ufffd).
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	if ValidDeviceID(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
