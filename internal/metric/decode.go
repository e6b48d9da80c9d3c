package metric

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Reasons used in FieldError.Reason. They are part of the API response, so
// they are kept stable.
const (
	ReasonRequired       = "required"
	ReasonString         = "must be a string"
	ReasonDeviceID       = "must be 1-128 characters of [A-Za-z0-9._:-]"
	ReasonNumber         = "must be a number"
	ReasonOutOfRange     = "out of range"
	ReasonCPURange       = "must be between 0 and 100"
	ReasonRPSRange       = "must be >= 0"
	ReasonRPSTooLarge    = "must not exceed 1000000000"
	ReasonTimestamp      = "must be a number of Unix seconds or an RFC 3339 string"
	ReasonRFC3339        = "must be a valid RFC 3339 timestamp"
	ReasonFuture         = "must not be more than 5 minutes in the future"
	ReasonBefore2000     = "must not be before 2000-01-01T00:00:00Z"
	ReasonUnknownField   = "unknown field"
	ReasonDuplicate      = "duplicate field"
	ReasonNotObject      = "must be a JSON object"
	ReasonTopLevel       = "body must be a JSON object or an array of objects"
	ReasonEmptyBody      = "body is empty"
	ReasonEmptyBatch     = "batch must contain at least one metric"
	ReasonMetricName     = "must match ^[a-z][a-z0-9_]{0,63}$"
	ReasonReservedName   = "cpu and rps are top-level fields, not names in metrics"
	ReasonFiniteNumber   = "must be a finite number"
	ReasonTooManyMetrics = "more named metrics than MAX_METRICS"
	ReasonNoMetric       = "must hold a metric when cpu or rps is absent"
	ReasonTagKey         = "must match ^[a-z][a-z0-9_]{0,31}$"
	ReasonTagValue       = "must be 1-64 characters of [A-Za-z0-9._:-]"
	ReasonTooManyTags    = "more than 8 tags"
	messageInvalid       = "invalid metrics"
	messageMalformed     = "malformed JSON"
	messageTooLarge      = "batch too large"
	messageEmptyBody     = "empty body"
	messageEmptyBatch    = "empty batch"
	maxFieldNameInError  = 256
)

// MaxRPS is the largest rps accepted: a billion requests per second, far
// above any device's, and small enough that sums and squares over any
// window stay far from float64's range (values near 1e308 overflowed the
// windows' sums to +Inf).
const MaxRPS = 1e9

// MaxFuture is how far after the receipt time a timestamp may lie.
const MaxFuture = 5 * time.Minute

// minTimestamp is 2000-01-01T00:00:00Z in Unix seconds.
const minTimestamp = 946684800

var minTime = time.Unix(minTimestamp, 0)

// DefaultMaxMetrics is the default of MAX_METRICS, the most named metrics
// one object may carry.
const DefaultMaxMetrics = 16

// Limits bound what Decode accepts.
type Limits struct {
	Batch   int // metrics per body; below 1 rejects every non-empty body
	Metrics int // named metrics per object; below 1 rejects every non-empty "metrics"
}

// Decode parses and validates body. single is true only when the body
// (Format JSON) is one JSON object, not an array; it is reported even when
// the object is rejected. now is the receipt time: absent timestamps become
// now (as Unix seconds, float64 with sub-second precision), and timestamps
// more than 5 minutes after now are rejected. Metrics are appended to dst[:0]
// so callers can reuse a buffer.
//
// On failure ms is nil and err is an *Error. The checks rank as follows:
//  1. Malformed JSON (Kind Invalid, Message "malformed JSON"): decoding stops
//     at the first syntax error, which is reported alone with its byte offset.
//  2. More than lim.Batch metrics (Kind TooLarge): items past the limit are
//     only checked for syntax.
//  3. Validation errors (Kind Invalid, Message "invalid metrics"), collected
//     for the whole body; at most MaxDetails of them are kept. Named metrics
//     past lim.Metrics in an object are only checked for syntax.
//
// An object carries cpu and rps, or a non-empty "metrics" beside which
// either may be absent (NoCPU, NoRPS). The Metrics and Tags of the returned
// metrics share arrays allocated by this call.
func Decode(body []byte, f Format, now time.Time, lim Limits, dst []Metric) (ms []Metric, single bool, err error) {
	d := decoder{data: body, maxMetrics: lim.Metrics}
	d.setNow(now)
	maxBatch := lim.Batch
	ms = dst[:0]
	var e *Error
	switch f {
	case JSON:
		ms, single, e = d.decodeJSON(ms, maxBatch)
	case NDJSON:
		ms, e = d.decodeNDJSON(ms, maxBatch)
	default:
		e = &Error{Kind: Invalid, Message: "unsupported format"}
	}
	if e != nil {
		return nil, single, e
	}
	return ms, single, nil
}

type decoder struct {
	data []byte // the input; for NDJSON, the body up to the end of the current line
	pos  int    // next byte to read

	ndjson bool   // data ends at a line end, not at the end of the body
	idx    int    // index of the metric being decoded, for syntax errors
	synErr string // set by the first syntax error

	invalid bool         // a validation error was found
	details []FieldError // validation errors, at most MaxDetails

	now      float64   // receipt time, Unix seconds
	limit    float64   // latest accepted timestamp, Unix seconds
	limitT   time.Time // latest accepted timestamp
	scratch  []byte    // unescaped strings
	unknowns []string  // unknown field names of the current object

	maxMetrics int
	named      []Named // backing array of every object's Metrics
	tags       []Tag   // backing array of every object's Tags
}

func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

func (d *decoder) setNow(now time.Time) {
	d.now = unixSeconds(now)
	d.limitT = now.Add(MaxFuture)
	d.limit = unixSeconds(d.limitT)
}

func (d *decoder) decodeJSON(ms []Metric, maxBatch int) ([]Metric, bool, *Error) {
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, emptyBody()
	}
	switch d.data[d.pos] {
	case '{':
		ms = append(ms, Metric{})
		if !d.object(&ms[0], 1) {
			return nil, true, d.syntaxError()
		}
		if !d.end() {
			return nil, true, d.syntaxError()
		}
		if maxBatch < 1 {
			return nil, true, tooLarge(maxBatch)
		}
		if d.invalid {
			return nil, true, d.invalidError()
		}
		return ms, true, nil
	case '[':
		d.pos++
		d.ws()
		if d.pos < len(d.data) && d.data[d.pos] == ']' {
			d.pos++
			if !d.end() {
				return nil, false, d.syntaxError()
			}
			return nil, false, &Error{Kind: Invalid, Message: messageEmptyBatch,
				Details: []FieldError{{Reason: ReasonEmptyBatch}}}
		}
		tooMany := false
		for i := 0; ; i++ {
			d.idx = i
			d.ws()
			if i >= maxBatch {
				// Too many: only check the syntax of the rest.
				tooMany = true
				if _, _, _, ok := d.value(1); !ok {
					return nil, false, d.syntaxError()
				}
			} else if d.pos < len(d.data) && d.data[d.pos] == '{' {
				// Decoded in place: a Metric is too large to copy cheaply.
				// After a validation error ms is dropped whole.
				ms = append(ms, Metric{})
				if !d.object(&ms[len(ms)-1], 2) {
					return nil, false, d.syntaxError()
				}
			} else {
				if _, _, _, ok := d.value(1); !ok {
					return nil, false, d.syntaxError()
				}
				d.fieldError(i, "", ReasonNotObject)
			}
			more, ok := d.more(']')
			if !ok {
				return nil, false, d.syntaxError()
			}
			if !more {
				break
			}
		}
		d.idx = 0
		if !d.end() {
			return nil, false, d.syntaxError()
		}
		if tooMany {
			return nil, false, tooLarge(maxBatch)
		}
		if d.invalid {
			return nil, false, d.invalidError()
		}
		return ms, false, nil
	default:
		if _, _, _, ok := d.value(0); !ok {
			return nil, false, d.syntaxError()
		}
		if !d.end() {
			return nil, false, d.syntaxError()
		}
		return nil, false, &Error{Kind: Invalid, Message: messageInvalid,
			Details: []FieldError{{Reason: ReasonTopLevel}}}
	}
}

func (d *decoder) decodeNDJSON(ms []Metric, maxBatch int) ([]Metric, *Error) {
	body := d.data
	d.ndjson = true
	n := 0 // non-blank lines seen
	for start := 0; start <= len(body); {
		end := bytes.IndexByte(body[start:], '\n')
		if end < 0 {
			end = len(body)
		} else {
			end += start
		}
		d.data = body[:end]
		d.pos = start
		start = end + 1
		d.ws()
		if d.pos == end {
			continue // blank line
		}
		d.idx = n
		if n >= maxBatch {
			// Too many: only check the syntax of the rest.
			if _, _, _, ok := d.value(0); !ok {
				return nil, d.syntaxError()
			}
		} else if d.data[d.pos] == '{' {
			ms = append(ms, Metric{}) // decoded in place, as in decodeJSON
			if !d.object(&ms[len(ms)-1], 1) {
				return nil, d.syntaxError()
			}
		} else {
			if _, _, _, ok := d.value(0); !ok {
				return nil, d.syntaxError()
			}
			d.fieldError(n, "", ReasonNotObject)
		}
		if !d.end() {
			return nil, d.syntaxError()
		}
		n++
	}
	if n == 0 {
		return nil, emptyBody()
	}
	if n > maxBatch {
		return nil, tooLarge(maxBatch)
	}
	if d.invalid {
		return nil, d.invalidError()
	}
	return ms, nil
}

func emptyBody() *Error {
	return &Error{Kind: Invalid, Message: messageEmptyBody, Details: []FieldError{{Reason: ReasonEmptyBody}}}
}

func tooLarge(maxBatch int) *Error {
	return &Error{Kind: TooLarge, Message: messageTooLarge, Details: []FieldError{{
		Index:  max(maxBatch, 0),
		Reason: "more than " + strconv.Itoa(maxBatch) + " metrics",
	}}}
}

func (d *decoder) syntaxError() *Error {
	return &Error{Kind: Invalid, Message: messageMalformed, Details: []FieldError{{Index: d.idx, Reason: d.synErr}}}
}

func (d *decoder) invalidError() *Error {
	return &Error{Kind: Invalid, Message: messageInvalid, Details: d.details}
}

func (d *decoder) fieldError(idx int, field, reason string) {
	d.invalid = true
	if len(d.details) < MaxDetails {
		d.details = append(d.details, FieldError{Index: idx, Field: field, Reason: reason})
	}
}

// Syntax errors. Each records the first problem and returns false.

func (d *decoder) fail(reason string, off int) bool {
	if d.synErr == "" {
		d.synErr = reason + " at offset " + strconv.Itoa(off)
	}
	return false
}

func (d *decoder) eof() bool {
	if d.ndjson {
		return d.fail("unexpected end of line", d.pos)
	}
	return d.fail("unexpected end of input", d.pos)
}

// unexpected reports the byte at d.pos (or the end of input).
func (d *decoder) unexpected() bool {
	return d.unexpectedAt(d.pos)
}

func (d *decoder) unexpectedAt(i int) bool {
	if i >= len(d.data) {
		d.pos = i
		return d.eof()
	}
	c := d.data[i]
	if c >= 0x20 && c < utf8.RuneSelf {
		return d.fail("invalid character "+strconv.QuoteRune(rune(c)), i)
	}
	return d.fail("invalid byte 0x"+string([]byte{hexDigits[c>>4], hexDigits[c&0xF]}), i)
}

// end skips trailing whitespace and reports whether the input is exhausted.
func (d *decoder) end() bool {
	d.ws()
	if d.pos != len(d.data) {
		return d.fail("unexpected data after top-level value", d.pos)
	}
	return true
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// Known fields, as bits of a seen-set.
const (
	fieldDeviceID = 1 << iota
	fieldCPU
	fieldRPS
	fieldTimestamp
	fieldMetrics
	fieldTags
)

// object decodes the object at d.pos (which is '{') into m, a zero Metric,
// as the metric with index d.idx; depth is the object's nesting depth. It
// returns false on a syntax error. Validation errors are recorded in d and
// leave m partial.
func (d *decoder) object(m *Metric, depth int) bool {
	idx := d.idx
	d.pos++ // '{'
	d.unknowns = d.unknowns[:0]
	seen := 0
	members := -1 // of "metrics"; -1 while it is absent or not an object
	d.ws()
	if d.pos >= len(d.data) {
		return d.eof()
	}
	if d.data[d.pos] == '}' {
		d.pos++
	} else {
		for {
			key, ok := d.unescapedKey()
			if !ok {
				return false
			}
			field := 0
			name := ""
			switch string(key) {
			case "device_id":
				field, name = fieldDeviceID, "device_id"
			case "cpu":
				field, name = fieldCPU, "cpu"
			case "rps":
				field, name = fieldRPS, "rps"
			case "timestamp":
				field, name = fieldTimestamp, "timestamp"
			case "metrics":
				field, name = fieldMetrics, "metrics"
			case "tags":
				field, name = fieldTags, "tags"
			default:
				name = fieldName(key)
			}
			if field&(fieldMetrics|fieldTags) != 0 && seen&field == 0 && d.pos < len(d.data) && d.data[d.pos] == '{' {
				seen |= field
				if field == fieldMetrics {
					members, ok = d.namedMetrics(m, idx, depth+1)
				} else {
					ok = d.deviceTags(m, idx, depth+1)
				}
				if !ok {
					return false
				}
			} else {
				k, raw, esc, ok := d.value(depth)
				if !ok {
					return false
				}
				switch {
				case field == 0:
					d.unknownField(idx, name)
				case seen&field != 0:
					d.fieldError(idx, name, ReasonDuplicate)
				default:
					seen |= field
					d.setField(m, idx, field, k, raw, esc)
				}
			}
			more, ok := d.more('}')
			if !ok {
				return false
			}
			if !more {
				break
			}
		}
	}
	if seen&fieldDeviceID == 0 {
		d.fieldError(idx, "device_id", ReasonRequired)
	}
	switch {
	case seen&fieldMetrics == 0:
		// The original shape: both signals, always.
		if seen&fieldCPU == 0 {
			d.fieldError(idx, "cpu", ReasonRequired)
		}
		if seen&fieldRPS == 0 {
			d.fieldError(idx, "rps", ReasonRequired)
		}
	case members == 0:
		// An empty "metrics" is no named metrics: then both signals are
		// needed, or the event would carry no value at all.
		if seen&fieldCPU == 0 || seen&fieldRPS == 0 {
			d.fieldError(idx, "metrics", ReasonNoMetric)
		}
	case members > 0:
		m.NoCPU = seen&fieldCPU == 0
		m.NoRPS = seen&fieldRPS == 0
	}
	if seen&fieldTimestamp == 0 {
		m.Timestamp = d.now
	}
	return true
}

// namedMetrics decodes the "metrics" object at d.pos (which is '{') into
// m.Metrics; depth is its nesting depth. It returns how many members the
// object has, and ok == false on a syntax error. Members past
// d.maxMetrics are only checked for syntax.
func (d *decoder) namedMetrics(m *Metric, idx, depth int) (members int, ok bool) {
	if depth > MaxDepth {
		return 0, d.fail("nesting deeper than "+strconv.Itoa(MaxDepth), d.pos)
	}
	d.pos++ // '{'
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return 0, true
	}
	if d.named == nil {
		// Room for a typical object, so that a single object's metrics
		// take one allocation.
		d.named = make([]Named, 0, min(max(d.maxMetrics, 1), DefaultMaxMetrics))
	}
	start := len(d.named)
	for {
		key, ok := d.unescapedKey()
		if !ok {
			return members, false
		}
		k, raw, _, ok := d.value(depth)
		if !ok {
			return members, false
		}
		members++
		if members <= d.maxMetrics {
			d.namedMetric(idx, start, key, k, raw)
		}
		more, ok := d.more('}')
		if !ok {
			return members, false
		}
		if !more {
			break
		}
	}
	if members > d.maxMetrics {
		d.fieldError(idx, "metrics", ReasonTooManyMetrics)
	}
	if n := len(d.named); n > start {
		m.Metrics = d.named[start:n:n]
	}
	return members, true
}

// namedMetric checks one member of "metrics" and appends it to d.named,
// whose entries from start on are the object's. A valid name is kept even
// when its value is not, so that a later duplicate is caught.
func (d *decoder) namedMetric(idx, start int, key []byte, k kind, raw []byte) {
	name := unsafe.String(unsafe.SliceData(key), len(key)) // not kept: copied below
	switch {
	case !ValidName(name):
		d.fieldError(idx, "metrics."+fieldName(key), ReasonMetricName)
		return
	case Reserved(name):
		d.fieldError(idx, "metrics."+name, ReasonReservedName)
		return
	}
	for _, n := range d.named[start:] {
		if n.Name == name {
			d.fieldError(idx, "metrics."+name, ReasonDuplicate)
			return
		}
	}
	// Not a number and beyond float64 are one problem here: a named
	// metric has no range but float64's.
	v, reason := parseNumber(k, raw)
	if reason != "" {
		d.fieldError(idx, "metrics."+name, ReasonFiniteNumber)
	}
	d.named = append(d.named, Named{Name: string(key), Value: v})
}

// deviceTags decodes the "tags" object at d.pos (which is '{') into
// m.Tags; depth is its nesting depth. It returns ok == false on a syntax
// error. Members past MaxTags are only checked for syntax.
func (d *decoder) deviceTags(m *Metric, idx, depth int) bool {
	if depth > MaxDepth {
		return d.fail("nesting deeper than "+strconv.Itoa(MaxDepth), d.pos)
	}
	d.pos++ // '{'
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return true // no tags
	}
	if d.tags == nil {
		d.tags = make([]Tag, 0, MaxTags)
	}
	start := len(d.tags)
	members := 0
	for {
		key, ok := d.unescapedKey()
		if !ok {
			return false
		}
		k, raw, esc, ok := d.value(depth)
		if !ok {
			return false
		}
		members++
		if members <= MaxTags {
			d.deviceTag(idx, start, key, k, raw, esc)
		}
		more, ok := d.more('}')
		if !ok {
			return false
		}
		if !more {
			break
		}
	}
	if members > MaxTags {
		d.fieldError(idx, "tags", ReasonTooManyTags)
	}
	if n := len(d.tags); n > start {
		m.Tags = d.tags[start:n:n]
	}
	return true
}

// unescapedKey reads an object's key, unescaped into d.scratch when it
// holds escapes: valid until d.scratch is reused.
func (d *decoder) unescapedKey() ([]byte, bool) {
	key, esc, ok := d.key()
	if ok && esc {
		d.scratch = unescape(d.scratch[:0], key)
		key = d.scratch
	}
	return key, ok
}

// deviceTag checks one member of "tags" and appends it to d.tags, whose
// entries from start on are the object's. A valid key is kept even when its
// value is not, so that a later duplicate is caught. key may be d.scratch:
// it is copied before the value is unescaped there.
func (d *decoder) deviceTag(idx, start int, key []byte, k kind, raw []byte, esc bool) {
	tk := unsafe.String(unsafe.SliceData(key), len(key))
	if !ValidTagKey(tk) {
		d.fieldError(idx, "tags."+fieldName(key), ReasonTagKey)
		return
	}
	for _, t := range d.tags[start:] {
		if t.Key == tk {
			d.fieldError(idx, "tags."+tk, ReasonDuplicate)
			return
		}
	}
	tk = string(key)
	v, reason := d.tagValue(k, raw, esc)
	if reason != "" {
		d.fieldError(idx, "tags."+tk, reason)
	}
	d.tags = append(d.tags, Tag{Key: tk, Value: v})
}

// tagValue returns the tag value token as a string, or why it is not one.
func (d *decoder) tagValue(k kind, raw []byte, esc bool) (string, string) {
	if k != kindString {
		return "", ReasonString
	}
	if esc {
		// Every valid character takes at most 6 bytes (\u0041) escaped.
		if len(raw) > 6*MaxTagValueLen {
			return "", ReasonTagValue
		}
		d.scratch = unescape(d.scratch[:0], raw)
		raw = d.scratch
	}
	if !ValidTagValue(unsafe.String(unsafe.SliceData(raw), len(raw))) {
		return "", ReasonTagValue
	}
	return string(raw), ""
}

// fieldName turns an unknown key into a FieldError.Field, shortening
// absurdly long names.
func fieldName(key []byte) string {
	if len(key) <= maxFieldNameInError {
		return string(key)
	}
	n := maxFieldNameInError
	for n > 0 && !utf8.RuneStart(key[n]) {
		n--
	}
	return string(key[:n]) + "..."
}

func (d *decoder) unknownField(idx int, name string) {
	for _, u := range d.unknowns {
		if u == name {
			d.fieldError(idx, name, ReasonDuplicate)
			return
		}
	}
	d.unknowns = append(d.unknowns, name)
	d.fieldError(idx, name, ReasonUnknownField)
}

func (d *decoder) setField(m *Metric, idx, field int, k kind, raw []byte, esc bool) {
	switch field {
	case fieldDeviceID:
		if k != kindString {
			d.fieldError(idx, "device_id", ReasonString)
			return
		}
		if esc {
			// Every valid character takes at most 6 bytes (\u0041) escaped.
			if len(raw) > 6*MaxDeviceIDLen {
				d.fieldError(idx, "device_id", ReasonDeviceID)
				return
			}
			d.scratch = unescape(d.scratch[:0], raw)
			raw = d.scratch
		}
		if !validDeviceIDBytes(raw) {
			d.fieldError(idx, "device_id", ReasonDeviceID)
			return
		}
		m.DeviceID = string(raw)
	case fieldCPU:
		v, ok := d.number(idx, "cpu", k, raw)
		if !ok {
			return
		}
		if !(v >= 0 && v <= 100) {
			d.fieldError(idx, "cpu", ReasonCPURange)
			return
		}
		m.CPU = v
	case fieldRPS:
		v, ok := d.number(idx, "rps", k, raw)
		if !ok {
			return
		}
		if !(v >= 0) {
			d.fieldError(idx, "rps", ReasonRPSRange)
			return
		}
		if v > MaxRPS {
			d.fieldError(idx, "rps", ReasonRPSTooLarge)
			return
		}
		m.RPS = v
	case fieldMetrics:
		d.fieldError(idx, "metrics", ReasonNotObject)
	case fieldTags:
		d.fieldError(idx, "tags", ReasonNotObject)
	case fieldTimestamp:
		switch k {
		case kindNumber:
			v, ok := d.number(idx, "timestamp", k, raw)
			if !ok {
				return
			}
			if v < minTimestamp {
				d.fieldError(idx, "timestamp", ReasonBefore2000)
				return
			}
			if v > d.limit {
				d.fieldError(idx, "timestamp", ReasonFuture)
				return
			}
			m.Timestamp = v
		case kindString:
			d.timestamp(m, idx, raw, esc)
		default:
			d.fieldError(idx, "timestamp", ReasonTimestamp)
		}
	}
}

// number converts a number token; it records an error and returns false if
// the value is not a number or overflows float64. -0 becomes 0.
func (d *decoder) number(idx int, name string, k kind, raw []byte) (float64, bool) {
	v, reason := parseNumber(k, raw)
	if reason != "" {
		d.fieldError(idx, name, reason)
		return 0, false
	}
	return v, true
}

// parseNumber converts a number token, or returns why it cannot: it is
// not a number, or it overflows float64. -0 becomes 0.
func parseNumber(k kind, raw []byte) (float64, string) {
	if k != kindNumber {
		return 0, ReasonNumber
	}
	v, ok := fastNumber(raw)
	if !ok {
		// raw matches the JSON number grammar, so the only possible error
		// is ErrRange for values beyond ±MaxFloat64. (Underflow yields 0.)
		var err error
		v, err = strconv.ParseFloat(unsafe.String(unsafe.SliceData(raw), len(raw)), 64)
		if err != nil {
			return 0, ReasonOutOfRange
		}
	}
	if v == 0 {
		v = 0 // drop the sign of -0
	}
	return v, ""
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// fastNumber converts a JSON number without exponent and with at most 15
// digits. Both the digits, as an integer below 2^53, and the power of ten
// are exact float64 values, so one IEEE division gives the correctly
// rounded result, the same as strconv.ParseFloat. ok is false for other
// numbers.
func fastNumber(raw []byte) (v float64, ok bool) {
	i := 0
	if raw[0] == '-' {
		i = 1
	}
	if len(raw)-i > 16 { // 15 digits and a point
		return 0, false
	}
	var mant uint64
	digits, frac := 0, -1
	for ; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0')
			digits++
		case c == '.':
			frac = digits
		default: // exponent
			return 0, false
		}
	}
	if digits > 15 {
		return 0, false
	}
	v = float64(mant)
	if frac >= 0 {
		v /= pow10[digits-frac]
	}
	if raw[0] == '-' {
		v = -v
	}
	return v, true
}

func (d *decoder) timestamp(m *Metric, idx int, raw []byte, esc bool) {
	var s string
	if esc {
		d.scratch = unescape(d.scratch[:0], raw)
		s = string(d.scratch) // rare; copying keeps scratch reusable
	} else {
		// The string is not kept: time.Parse keeps nothing of a
		// successfully parsed RFC 3339 value, and its error is dropped.
		s = unsafe.String(unsafe.SliceData(raw), len(raw))
	}
	t, err := time.ParseInLocation(time.RFC3339Nano, s, time.UTC)
	if err != nil {
		d.fieldError(idx, "timestamp", ReasonRFC3339)
		return
	}
	if t.Before(minTime) {
		d.fieldError(idx, "timestamp", ReasonBefore2000)
		return
	}
	if t.After(d.limitT) {
		d.fieldError(idx, "timestamp", ReasonFuture)
		return
	}
	m.Timestamp = unixSeconds(t)
}

type kind uint8

const (
	kindString kind = iota + 1
	kindNumber
	kindBool
	kindNull
	kindObject
	kindArray
)

// value scans the JSON value at d.pos. depth is the nesting depth of the
// container holding the value. For a string, raw is the text between the
// quotes and esc tells whether it holds escapes; for a number, raw is the
// literal.
func (d *decoder) value(depth int) (k kind, raw []byte, esc, ok bool) {
	if d.pos >= len(d.data) {
		return 0, nil, false, d.eof()
	}
	switch c := d.data[d.pos]; c {
	case '"':
		raw, esc, ok = d.str()
		return kindString, raw, esc, ok
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		raw, ok = d.num()
		return kindNumber, raw, false, ok
	case 't':
		return kindBool, nil, false, d.literal("true")
	case 'f':
		return kindBool, nil, false, d.literal("false")
	case 'n':
		return kindNull, nil, false, d.literal("null")
	case '{':
		return kindObject, nil, false, d.skip(depth+1, '}')
	case '[':
		return kindArray, nil, false, d.skip(depth+1, ']')
	}
	return 0, nil, false, d.unexpected()
}

func (d *decoder) literal(word string) bool {
	for i := 0; i < len(word); i++ {
		if d.pos+i >= len(d.data) || d.data[d.pos+i] != word[i] {
			return d.unexpectedAt(d.pos + i)
		}
	}
	d.pos += len(word)
	return true
}

// num scans a number per the JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) num() ([]byte, bool) {
	data := d.data
	start := d.pos
	i := start
	if data[i] == '-' {
		i++
	}
	if i >= len(data) {
		return nil, d.unexpectedAt(i)
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return nil, d.unexpectedAt(i)
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return nil, d.unexpectedAt(i)
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return nil, d.unexpectedAt(i)
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	d.pos = i
	return data[start:i], true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// plain marks the bytes a string may hold without further checks.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans the string at d.pos (which is '"'), validating escapes and
// UTF-8. It returns the bytes between the quotes.
func (d *decoder) str() (raw []byte, esc, ok bool) {
	data := d.data
	start := d.pos + 1
	i := start
	for i < len(data) {
		c := data[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			d.pos = i + 1
			return data[start:i], esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(data) {
				return nil, false, d.unexpectedAt(i)
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for j := 0; j < 4; j++ {
					if i >= len(data) || !isHex(data[i]) {
						return nil, false, d.unexpectedAt(i)
					}
					i++
				}
			default:
				return nil, false, d.fail("invalid escape "+strconv.Quote(string(data[i-1:i+1])), i-1)
			}
		case c < 0x20:
			return nil, false, d.fail("control character in string", i)
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, d.fail("invalid UTF-8 in string", i)
			}
			i += size
		}
	}
	return nil, false, d.fail("unterminated string", start-1)
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape appends the decoded form of raw, a string body already checked
// by str, to dst. Invalid surrogates become U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return append(dst, raw[i:]...)
		}
		dst = append(dst, raw[i:i+j]...)
		i += j
		switch c := raw[i+1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hexVal(raw[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		i += 2
	}
	return dst
}

// skip skips the object or array at d.pos; depth is the nesting depth of
// its members and closing its last byte, '}' or ']'.
func (d *decoder) skip(depth int, closing byte) bool {
	if depth > MaxDepth {
		return d.fail("nesting deeper than "+strconv.Itoa(MaxDepth), d.pos)
	}
	d.pos++ // '{' or '['
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == closing {
		d.pos++
		return true
	}
	for {
		if closing == '}' {
			if _, _, ok := d.key(); !ok {
				return false
			}
		}
		if _, _, _, ok := d.value(depth); !ok {
			return false
		}
		if more, ok := d.more(closing); !more {
			return ok
		}
	}
}

// key scans an object member's key at d.pos, as str does, and the colon
// after it.
func (d *decoder) key() (raw []byte, esc, ok bool) {
	if d.pos >= len(d.data) {
		return nil, false, d.eof()
	}
	if d.data[d.pos] != '"' {
		return nil, false, d.unexpected()
	}
	if raw, esc, ok = d.str(); !ok {
		return nil, false, false
	}
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, d.eof()
	}
	if d.data[d.pos] != ':' {
		return nil, false, d.unexpected()
	}
	d.pos++
	d.ws()
	return raw, esc, true
}

// more scans what follows a member of a container: a comma (more is true)
// or closing, the container's last byte (more is false). ok is false
// after a syntax error.
func (d *decoder) more(closing byte) (more, ok bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return false, d.eof()
	}
	c := d.data[d.pos]
	d.pos++
	switch c {
	case closing:
		return false, true
	case ',':
		d.ws()
		return true, true
	}
	return false, d.unexpectedAt(d.pos - 1)
}
