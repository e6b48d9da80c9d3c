package metric

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// This file holds an independent oracle for Decode, built on encoding/json,
// and a generator of random bodies. TestDifferential and FuzzDecode compare
// Decode with the oracle.

// refResult is what Decode should return according to the oracle.
type refResult struct {
	ms      []Metric
	single  bool
	kind    Kind
	message string       // "" when the body is accepted
	details []FieldError // validation errors (uncapped); nil for other failures
}

// reference decodes body with encoding/json and checks the rules by hand.
// Precedence: malformed JSON, then too many metrics, then validation.
func reference(body []byte, f Format, now time.Time, lim Limits) refResult {
	maxBatch := lim.Batch
	var items [][]byte
	single := false
	switch f {
	case JSON:
		trimmed := bytes.Trim(body, " \t\r\n")
		if len(trimmed) == 0 {
			return refResult{kind: Invalid, message: "empty body"}
		}
		if !wellFormed(body) {
			return refResult{kind: Invalid, message: "malformed JSON"}
		}
		switch trimmed[0] {
		case '{':
			single = true
			items = [][]byte{trimmed}
		case '[':
			var raws []json.RawMessage
			if err := json.Unmarshal(trimmed, &raws); err != nil {
				panic(err)
			}
			if len(raws) == 0 {
				return refResult{kind: Invalid, message: "empty batch"}
			}
			for _, r := range raws {
				items = append(items, r)
			}
		default:
			return refResult{kind: Invalid, message: "invalid metrics", details: []FieldError{{0, "", ReasonTopLevel}}}
		}
	case NDJSON:
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			line = bytes.Trim(line, " \t\r")
			if len(line) == 0 {
				continue
			}
			if !wellFormed(line) {
				return refResult{kind: Invalid, message: "malformed JSON"}
			}
			items = append(items, line)
		}
		if len(items) == 0 {
			return refResult{kind: Invalid, message: "empty body"}
		}
	}
	if len(items) > maxBatch {
		return refResult{single: single, kind: TooLarge, message: "batch too large"}
	}
	var ms []Metric
	var details []FieldError
	for i, item := range items {
		if item[0] != '{' {
			details = append(details, FieldError{i, "", ReasonNotObject})
			continue
		}
		m, errs := refObject(item, i, now, lim.Metrics)
		details = append(details, errs...)
		ms = append(ms, m)
	}
	if len(details) > 0 {
		return refResult{single: single, kind: Invalid, message: "invalid metrics", details: details}
	}
	return refResult{ms: ms, single: single}
}

// wellFormed reports whether b is one JSON value in UTF-8 nested at most
// MaxDepth deep.
func wellFormed(b []byte) bool {
	if !json.Valid(b) || !utf8.Valid(b) {
		return false
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > MaxDepth {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}

// refMember is one member of a JSON object, in the object's order.
type refMember struct {
	key   string
	value json.RawMessage
}

// refMembers returns the members of the JSON object raw.
func refMembers(raw []byte) []refMember {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		panic(err)
	}
	var out []refMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		out = append(out, refMember{tok.(string), v})
	}
	return out
}

// refShorten shortens a field name over 256 bytes as Decode does.
func refShorten(name string) string {
	if len(name) <= 256 {
		return name
	}
	n := 256
	for !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n] + "..."
}

// refNumber parses a JSON value as a number, or returns why it cannot.
func refNumber(v json.RawMessage) (float64, string) {
	if !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
		return 0, ReasonNumber
	}
	x, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, ReasonOutOfRange
	}
	return x + 0, "" // +0 turns -0 into 0
}

var (
	refNameRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	refTagKeyRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	refTagValueRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// refNamed checks a "metrics" object; it returns the valid metrics and the
// number of members.
func refNamed(v json.RawMessage, maxMetrics int, bad func(field, reason string)) ([]Named, int) {
	members := refMembers(v)
	var out []Named
	seen := map[string]bool{}
	for j, mem := range members {
		if j >= maxMetrics {
			break // only parsed
		}
		field := "metrics." + refShorten(mem.key)
		switch {
		case !refNameRE.MatchString(mem.key):
			bad(field, ReasonMetricName)
		case mem.key == "cpu" || mem.key == "rps":
			bad(field, ReasonReservedName)
		case seen[mem.key]:
			bad(field, ReasonDuplicate)
		default:
			seen[mem.key] = true
			if x, reason := refNumber(mem.value); reason != "" {
				bad(field, ReasonFiniteNumber)
			} else {
				out = append(out, Named{mem.key, x})
			}
		}
	}
	if len(members) > maxMetrics {
		bad("metrics", ReasonTooManyMetrics)
	}
	return out, len(members)
}

// refTags checks a "tags" object and returns the valid tags.
func refTags(v json.RawMessage, bad func(field, reason string)) []Tag {
	members := refMembers(v)
	var out []Tag
	seen := map[string]bool{}
	for j, mem := range members {
		if j >= 8 {
			break // only parsed
		}
		field := "tags." + refShorten(mem.key)
		var s string
		switch {
		case !refTagKeyRE.MatchString(mem.key):
			bad(field, ReasonTagKey)
		case seen[mem.key]:
			bad(field, ReasonDuplicate)
		case mem.value[0] != '"':
			seen[mem.key] = true
			bad(field, ReasonString)
		case json.Unmarshal(mem.value, &s) != nil || !refTagValueRE.MatchString(s):
			seen[mem.key] = true
			bad(field, ReasonTagValue)
		default:
			seen[mem.key] = true
			out = append(out, Tag{mem.key, s})
		}
	}
	if len(members) > 8 {
		bad("tags", ReasonTooManyTags)
	}
	return out
}

func refObject(raw []byte, i int, now time.Time, maxMetrics int) (Metric, []FieldError) {
	var m Metric
	var errs []FieldError
	bad := func(field, reason string) { errs = append(errs, FieldError{i, field, reason}) }
	seen := map[string]bool{}
	namedMembers := -1 // of "metrics"; -1 while it is absent or not an object
	for _, mem := range refMembers(raw) {
		key, v := mem.key, mem.value
		known := key == "device_id" || key == "cpu" || key == "rps" || key == "timestamp" || key == "metrics" || key == "tags"
		name := key
		if !known {
			name = refShorten(key)
		}
		switch {
		case seen[name]:
			bad(name, ReasonDuplicate)
			continue
		case !known:
			seen[name] = true
			bad(name, ReasonUnknownField)
			continue
		}
		seen[name] = true
		isNumber := v[0] == '-' || (v[0] >= '0' && v[0] <= '9')
		number := func() (float64, bool) {
			if !isNumber {
				bad(key, ReasonNumber)
				return 0, false
			}
			x, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				bad(key, ReasonOutOfRange)
				return 0, false
			}
			return x + 0, true // +0 turns -0 into 0
		}
		switch key {
		case "device_id":
			var s string
			if v[0] != '"' {
				bad(key, ReasonString)
			} else if json.Unmarshal(v, &s); !ValidDeviceID(s) {
				bad(key, ReasonDeviceID)
			} else {
				m.DeviceID = s
			}
		case "cpu":
			if x, ok := number(); !ok {
			} else if x < 0 || x > 100 {
				bad(key, ReasonCPURange)
			} else {
				m.CPU = x
			}
		case "rps":
			if x, ok := number(); !ok {
			} else if x < 0 {
				bad(key, ReasonRPSRange)
			} else if x > 1e9 {
				bad(key, ReasonRPSTooLarge)
			} else {
				m.RPS = x
			}
		case "metrics":
			if v[0] != '{' {
				bad(key, ReasonNotObject)
			} else {
				m.Metrics, namedMembers = refNamed(v, maxMetrics, bad)
			}
		case "tags":
			if v[0] != '{' {
				bad(key, ReasonNotObject)
			} else {
				m.Tags = refTags(v, bad)
			}
		case "timestamp":
			limit := now.Add(5 * time.Minute)
			switch {
			case isNumber:
				x, ok := number()
				switch {
				case !ok:
				case x < 946684800:
					bad(key, ReasonBefore2000)
				case x > float64(limit.Unix())+float64(limit.Nanosecond())/1e9:
					bad(key, ReasonFuture)
				default:
					m.Timestamp = x
				}
			case v[0] == '"':
				var s string
				json.Unmarshal(v, &s)
				t, err := time.Parse(time.RFC3339Nano, s)
				switch {
				case err != nil:
					bad(key, ReasonRFC3339)
				case t.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)):
					bad(key, ReasonBefore2000)
				case t.After(limit):
					bad(key, ReasonFuture)
				default:
					m.Timestamp = float64(t.Unix()) + float64(t.Nanosecond())/1e9
				}
			default:
				bad(key, ReasonTimestamp)
			}
		}
	}
	if !seen["device_id"] {
		bad("device_id", ReasonRequired)
	}
	switch {
	case !seen["metrics"]:
		for _, k := range []string{"cpu", "rps"} {
			if !seen[k] {
				bad(k, ReasonRequired)
			}
		}
	case namedMembers == 0:
		if !seen["cpu"] || !seen["rps"] {
			bad("metrics", ReasonNoMetric)
		}
	case namedMembers > 0:
		m.NoCPU, m.NoRPS = !seen["cpu"], !seen["rps"]
	}
	if !seen["timestamp"] {
		m.Timestamp = float64(now.Unix()) + float64(now.Nanosecond())/1e9
	}
	return m, errs
}

// checkAgainstReference reports how Decode's result differs from the
// oracle's, or "" if it does not.
func checkAgainstReference(body []byte, f Format, now time.Time, lim Limits) string {
	ms, single, err := Decode(body, f, now, lim, nil)
	want := reference(body, f, now, lim)
	if want.message == "" {
		if err != nil {
			return "Decode failed: " + err.Error() + "; oracle accepts"
		}
		if single != want.single {
			return "single = " + strconv.FormatBool(single)
		}
		if !reflect.DeepEqual(ms, want.ms) {
			return "metrics differ:\n  got  " + sprint(ms) + "\n  want " + sprint(want.ms)
		}
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		return "Decode accepted " + sprint(ms) + "; oracle: " + want.message
	}
	if ms != nil {
		return "metrics returned with an error"
	}
	if e.Kind != want.kind || e.Message != want.message {
		return "got " + e.Kind.String() + " " + strconv.Quote(e.Message) + ", oracle " + want.kind.String() + " " + strconv.Quote(want.message) + ": " + e.Error()
	}
	if want.message == "malformed JSON" {
		if len(e.Details) != 1 || !strings.Contains(e.Details[0].Reason, " at offset ") {
			return "malformed JSON without one located detail: " + sprint(e.Details)
		}
		return ""
	}
	if want.details != nil {
		wd := want.details[:min(len(want.details), MaxDetails)]
		if !reflect.DeepEqual(e.Details, wd) {
			return "details differ:\n  got  " + sprint(e.Details) + "\n  want " + sprint(wd)
		}
	}
	return ""
}

func sprint(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// gen writes random bodies that are mostly valid, with a sprinkling of
// every kind of mistake, in randomly chosen but equivalent encodings.
type gen struct {
	r       *rand.Rand
	b       []byte
	badRate int // one in badRate choices is a mistake; 0 for none
}

func (g *gen) bad() bool { return g.badRate > 0 && g.r.IntN(g.badRate) == 0 }

func (g *gen) ws() {
	if g.r.IntN(4) != 0 {
		return
	}
	for range g.r.IntN(3) + 1 {
		g.b = append(g.b, " \t\r"[g.r.IntN(3)])
	}
}

// str writes s as a JSON string, escaping characters at random.
func (g *gen) str(s string) {
	g.b = append(g.b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			g.b = append(g.b, '\\', byte(c))
		case c < 0x20 || g.r.IntN(8) == 0:
			if c == '/' && g.r.IntN(2) == 0 {
				g.b = append(g.b, '\\', '/')
			} else if c > 0xFFFF {
				r1, r2 := utf16Pair(c)
				g.b = g.appendU(g.appendU(g.b, r1), r2)
			} else {
				g.b = g.appendU(g.b, c)
			}
		default:
			g.b = utf8.AppendRune(g.b, c)
		}
	}
	g.b = append(g.b, '"')
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xD800 + (r>>10)&0x3FF, 0xDC00 + r&0x3FF
}

func (g *gen) appendU(b []byte, r rune) []byte {
	hex := "0123456789abcdef"
	if g.r.IntN(2) == 0 {
		hex = "0123456789ABCDEF"
	}
	return append(b, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
}

// num writes x in one of the JSON spellings that parse to it.
func (g *gen) num(x float64) {
	switch g.r.IntN(5) {
	case 0:
		g.b = strconv.AppendFloat(g.b, x, 'f', -1, 64)
	case 1:
		g.b = strconv.AppendFloat(g.b, x, 'e', -1, 64)
	case 2:
		g.b = strconv.AppendFloat(g.b, x, 'E', -1, 64)
	case 3:
		g.b = strconv.AppendFloat(g.b, x, 'g', -1, 64)
	default:
		g.b = strconv.AppendFloat(g.b, x, 'f', 20, 64) // rounded, with trailing digits
	}
}

func (g *gen) wrongType() {
	switch g.r.IntN(6) {
	case 0:
		g.b = append(g.b, "null"...)
	case 1:
		g.b = append(g.b, "true"...)
	case 2:
		g.b = append(g.b, "false"...)
	case 3:
		g.b = append(g.b, `{"v":[1,"x",{}]}`...)
	case 4:
		g.b = append(g.b, `[]`...)
	default:
		g.str("12")
	}
}

const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"

func (g *gen) deviceID() {
	if g.bad() {
		switch g.r.IntN(5) {
		case 0:
			g.wrongType()
		case 1:
			g.str("")
		case 2:
			g.str(strings.Repeat("x", 129))
		case 3:
			g.str("dev" + string([]rune{' ', '/', 'é', '\n', 0, '😀', '\ufffd'}[g.r.IntN(7)]))
		default:
			g.b = strconv.AppendInt(g.b, int64(g.r.IntN(100)), 10)
		}
		return
	}
	id := make([]byte, 1+g.r.IntN(20))
	if g.r.IntN(10) == 0 {
		id = make([]byte, 128)
	}
	for i := range id {
		id[i] = idChars[g.r.IntN(len(idChars))]
	}
	g.str(string(id))
}

func (g *gen) percent() {
	if g.bad() {
		switch g.r.IntN(5) {
		case 0:
			g.wrongType()
		case 1:
			g.num(-g.r.Float64() - 1e-9)
		case 2:
			g.num(100 + g.r.Float64() + 1e-9)
		case 3:
			g.b = append(g.b, "1e999"...)
		default:
			g.str("NaN")
		}
		return
	}
	switch g.r.IntN(4) {
	case 0:
		g.num(float64(g.r.IntN(101)))
	case 1:
		g.b = append(g.b, "-0"...)
	default:
		g.num(g.r.Float64() * 100)
	}
}

func (g *gen) rate() {
	if g.bad() {
		switch g.r.IntN(4) {
		case 0:
			g.wrongType()
		case 1:
			g.num(-g.r.Float64()*1e6 - 1e-9)
		case 2:
			g.num(1e9 * (1 + g.r.ExpFloat64()*1e6 + 1e-9))
		default:
			g.b = append(g.b, "-1e400"...)
		}
		return
	}
	switch g.r.IntN(4) {
	case 0:
		g.num(float64(g.r.Uint32N(1_000_000_001)))
	case 1:
		g.b = append(g.b, "1e-400"...)
	default:
		g.num(g.r.ExpFloat64() * 1000)
	}
}

func (g *gen) timestamp(now time.Time) {
	if g.bad() {
		switch g.r.IntN(6) {
		case 0:
			g.wrongType()
		case 1:
			g.num(float64(now.Unix() + 301 + g.r.Int64N(1e6)))
		case 2:
			g.num(float64(g.r.Int64N(946684800)))
		case 3:
			g.str(now.Add(5*time.Minute + time.Duration(1+g.r.Int64N(1e12))).Format(time.RFC3339Nano))
		case 4:
			g.str("2024-05-01 12:00:00")
		default:
			g.str(time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC).Format(time.RFC3339))
		}
		return
	}
	min := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	span := now.Add(5 * time.Minute).Sub(min)
	t := min.Add(time.Duration(g.r.Int64N(int64(span) + 1)))
	switch g.r.IntN(6) {
	case 0:
		g.b = strconv.AppendInt(g.b, t.Unix(), 10)
	case 1:
		g.num(float64(t.Unix()) + float64(t.Nanosecond())/1e9)
	case 2:
		g.str(t.UTC().Format(time.RFC3339))
	case 3:
		zone := time.FixedZone("", (g.r.IntN(48)-24)*30*60)
		g.str(t.In(zone).Format(time.RFC3339Nano))
	case 4:
		g.str(now.Add(5 * time.Minute).Format(time.RFC3339Nano))
	default:
		g.str(min.Format(time.RFC3339))
	}
}

func (g *gen) object(now time.Time) {
	type field struct {
		name  string
		write func()
	}
	fields := []field{
		{"device_id", g.deviceID},
		{"cpu", g.percent},
		{"rps", g.rate},
	}
	if g.r.IntN(3) != 0 {
		fields = append(fields, field{"timestamp", func() { g.timestamp(now) }})
	}
	if g.r.IntN(3) == 0 {
		// Named metrics, beside which cpu or rps may go.
		kept := fields[:0:0]
		for _, fl := range fields {
			if (fl.name == "cpu" || fl.name == "rps") && g.r.IntN(3) == 0 {
				continue
			}
			kept = append(kept, fl)
		}
		fields = append(kept, field{"metrics", g.namedMetrics})
	}
	if g.r.IntN(4) == 0 {
		fields = append(fields, field{"tags", g.tags})
	}
	if g.bad() {
		fields = fields[:g.r.IntN(len(fields))] // drop some
	}
	if g.bad() {
		fields = append(fields, field{[]string{"CPU", "extra", "device", "x", "cpu "}[g.r.IntN(5)], func() {
			g.wrongType()
		}})
	}
	if g.bad() && len(fields) > 0 {
		fields = append(fields, fields[g.r.IntN(len(fields))])
	}
	g.r.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	g.b = append(g.b, '{')
	for i, fl := range fields {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.ws()
		g.str(fl.name)
		g.ws()
		g.b = append(g.b, ':')
		g.ws()
		fl.write()
		g.ws()
	}
	g.b = append(g.b, '}')
}

// diffMaxMetrics is the MAX_METRICS of the differential tests.
const diffMaxMetrics = 4

// key returns a random name of up to maxLen characters matching
// ^[a-z][a-z0-9_]*$ (not cpu or rps), or, if wrong, one that breaks a
// rule.
func (g *gen) key(maxLen int, wrong bool) string {
	if wrong {
		bad := []string{"", "Temp", "1a", "_a", "a-b", "a.b", "a b", "é", strings.Repeat("a", maxLen+1), "a\u0000", "cpu", "rps"}
		return bad[g.r.IntN(len(bad))]
	}
	const first, rest = "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz0123456789_"
	n := 1 + g.r.IntN(12)
	if g.r.IntN(10) == 0 {
		n = maxLen
	}
	b := []byte{first[g.r.IntN(len(first))]}
	for len(b) < n {
		b = append(b, rest[g.r.IntN(len(rest))])
	}
	if string(b) == "cpu" || string(b) == "rps" {
		b[0] = 'x'
	}
	return string(b)
}

// members writes an object of n members with distinct keys from key and
// values from value. As mistakes, it writes too many members (past limit)
// or none, repeats a key, or gets one member's key or value wrong.
func (g *gen) members(n, limit int, key func(wrong bool) string, value func(wrong bool)) {
	switch {
	case g.bad():
		n = limit + 1 + g.r.IntN(3)
	case g.bad():
		n = 0
	}
	dup, wrongKey, wrongValue := -1, -1, -1
	if n > 1 && g.bad() {
		dup = 1 + g.r.IntN(n-1)
	}
	if n > 0 && g.bad() {
		wrongKey = g.r.IntN(n)
	}
	if n > 0 && g.bad() {
		wrongValue = g.r.IntN(n)
	}
	var keys []string
	g.b = append(g.b, '{')
	for i := range n {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		k := key(i == wrongKey)
		switch {
		case i == dup:
			k = keys[g.r.IntN(len(keys))]
		case i != wrongKey:
			for slices.Contains(keys, k) {
				k = key(false)
			}
		}
		keys = append(keys, k)
		g.ws()
		g.str(k)
		g.ws()
		g.b = append(g.b, ':')
		g.ws()
		value(i == wrongValue)
		g.ws()
	}
	g.b = append(g.b, '}')
}

func (g *gen) namedMetrics() {
	if g.bad() {
		g.wrongType()
		return
	}
	key := func(wrong bool) string { return g.key(MaxNameLen, wrong) }
	g.members(1+g.r.IntN(diffMaxMetrics), diffMaxMetrics, key, func(wrong bool) {
		if wrong {
			switch g.r.IntN(3) {
			case 0:
				g.wrongType()
			case 1:
				g.b = append(g.b, "-1e999"...)
			default:
				g.str("21.5")
			}
			return
		}
		switch g.r.IntN(4) {
		case 0:
			g.b = append(g.b, "-0"...)
		case 1:
			g.num(math.Float64frombits(g.r.Uint64() &^ (0x7ff << 52))) // finite
		default:
			g.num(g.r.NormFloat64() * 100)
		}
	})
}

func (g *gen) tags() {
	if g.bad() {
		g.wrongType()
		return
	}
	n := g.r.IntN(3)
	if g.r.IntN(4) == 0 {
		n = MaxTags
	}
	key := func(wrong bool) string {
		k := g.key(MaxTagKeyLen, wrong)
		if k == "cpu" || k == "rps" {
			k = "A" // both are fine tag keys
		}
		return k
	}
	g.members(n, MaxTags, key, func(wrong bool) {
		if wrong {
			switch g.r.IntN(4) {
			case 0:
				g.wrongType()
			case 1:
				g.str("")
			case 2:
				g.str(strings.Repeat("v", MaxTagValueLen+1))
			default:
				g.str("new york")
			}
			return
		}
		v := make([]byte, 1+g.r.IntN(MaxTagValueLen))
		for i := range v {
			v[i] = idChars[g.r.IntN(len(idChars))]
		}
		g.str(string(v))
	})
}

// body returns a random body with up to maxItems metrics.
func (g *gen) body(f Format, now time.Time, maxItems int) []byte {
	g.b = g.b[:0]
	n := 1 + g.r.IntN(maxItems)
	switch {
	case f == NDJSON:
		for range n {
			if g.r.IntN(4) == 0 {
				g.ws()
				g.b = append(g.b, "\r\n"[g.r.IntN(2):]...)
			}
			g.ws()
			if g.bad() {
				g.b = append(g.b, "[1]"...)
			} else {
				g.object(now)
			}
			g.ws()
			g.b = append(g.b, "\r\n"[g.r.IntN(2):]...)
		}
	case g.r.IntN(3) == 0:
		g.ws()
		g.object(now)
		g.ws()
	default:
		g.ws()
		g.b = append(g.b, '[')
		for i := range n {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.ws()
			if g.bad() {
				g.b = append(g.b, "42"...)
			} else {
				g.object(now)
			}
			g.ws()
		}
		g.b = append(g.b, ']')
		g.ws()
	}
	return g.b
}

func TestDifferential(t *testing.T) {
	nows := []time.Time{testNow, time.Unix(1714564800, 987654321)}
	tests := []struct {
		name     string
		badRate  int
		format   Format
		maxBatch int
		minOK    float64 // share of bodies that must be accepted
	}{
		{"valid JSON", 0, JSON, 100, 1},
		{"valid NDJSON", 0, NDJSON, 100, 1},
		// Named metrics and tags add choices, and so mistakes, to an
		// object: a fifth of mixed bodies is still valid.
		{"mixed JSON", 25, JSON, 100, 0.2},
		{"mixed NDJSON", 25, NDJSON, 100, 0.2},
		{"mostly invalid JSON", 3, JSON, 6, 0},
		{"mostly invalid NDJSON", 3, NDJSON, 6, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &gen{r: rand.New(rand.NewPCG(uint64(tt.badRate), uint64(tt.format))), badRate: tt.badRate}
			const runs = 3000
			ok := 0
			for i := range runs {
				now := nows[i%len(nows)]
				body := g.body(tt.format, now, 8)
				limits := Limits{Batch: tt.maxBatch, Metrics: diffMaxMetrics}
				if diff := checkAgainstReference(body, tt.format, now, limits); diff != "" {
					t.Fatalf("body %q:\n%s", body, diff)
				}
				if _, _, err := Decode(body, tt.format, now, limits, nil); err == nil {
					ok++
				}
			}
			if share := float64(ok) / runs; share < tt.minOK {
				t.Errorf("only %.0f%% of bodies accepted, want at least %.0f%%", share*100, tt.minOK*100)
			}
		})
	}
}

// TestDifferentialEdgeCases runs the oracle over hand-picked bodies that
// the generator is unlikely to produce.
func TestDifferentialEdgeCases(t *testing.T) {
	bodies := []string{
		``, ` `, `[]`, `[ ]`, `{}`, `[{}]`, `42`, `"x"`, `null`, `[1]`, `[[]]`, `{"a":1}`,
		`{"device_id":"d1","cpu":1,"rps":2}`,
		`{"device_id":"d\ud83d","cpu":1,"rps":2}`,
		`{"\ud800":1,"\ud800":2}`,
		`{"\ud83d\ude00":1}`,
		`{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00.0000000000000000000000000000000001Z"}`,
		`{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00,5Z"}`,
		`{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01t11:00:00z"}`,
		`{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-02-30T11:00:00Z"}`,
		`{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00+24:00"}`,
		`{"device_id":"d1","cpu":1e-400,"rps":4.9e-324,"timestamp":946684800.0000001}`,
		`{"device_id":"d1","cpu":100.00000000000001,"rps":2}`,
		`{"device_id":"d1","cpu":100.000000000000001,"rps":2}`,
		`{"device_id":"d1","cpu":1,"rps":2}` + "\n" + `{"device_id":"d1","cpu":1,"rps":2}`,
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		`{"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`,
		`{"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`,
		`[{"x":` + strings.Repeat("{\"a\":", MaxDepth-2) + `1` + strings.Repeat("}", MaxDepth-2) + `}]`,
		`[{"x":` + strings.Repeat("{\"a\":", MaxDepth-1) + `1` + strings.Repeat("}", MaxDepth-1) + `}]`,
		"\n\n{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2}\r\n\r\n",
		"{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2}\r",
		"{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2}\v",
		"{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2,\"x\":\"\xef\xbf\xbf\"}",
		`{"` + strings.Repeat("k", 300) + `":1}`,
		`{"` + strings.Repeat("é", 150) + `":1,"` + strings.Repeat("é", 151) + `":1}`,
		`{"device_id":"d1","metrics":{"a":1}}`,
		`{"device_id":"d1","metrics":{"a":1,"b":2,"c":3}}`,
		`{"device_id":"d1","metrics":{}}`,
		`{"device_id":"d1","cpu":1,"metrics":{}}`,
		`{"device_id":"d1","cpu":1,"rps":2,"metrics":{}}`,
		`{"device_id":"d1","metrics":[]}`,
		`{"device_id":"d1","metrics":{"a":1},"metrics":{}}`,
		`{"device_id":"d1","metrics":{"a":"x","a":1,"cpu":1,"A":1,"b":1e999}}`,
		`{"device_id":"d1","metrics":{"\u0061":1,"a":2}}`,
		`{"device_id":"d1","metrics":{"\ud800":1}}`,
		`{"device_id":"d1","metrics":{"` + strings.Repeat("é", 200) + `":1}}`,
		`{"device_id":"d1","metrics":{"a":` + strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2) + `}}`,
		`{"device_id":"d1","metrics":{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}}`,
		`[{"device_id":"d1","metrics":{"a":` + strings.Repeat("[", MaxDepth-3) + strings.Repeat("]", MaxDepth-3) + `}}]`,
		`[{"device_id":"d1","metrics":{"a":` + strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2) + `}}]`,
		`{"device_id":"d1","cpu":1,"rps":2,"tags":{}}`,
		`{"device_id":"d1","tags":{"k":"v"}}`,
		`{"device_id":"d1","cpu":1,"rps":2,"tags":{"k":"v","k":1,"K":"v","e":"","f":"` + strings.Repeat("v", 65) + `"}}`,
		`{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}}`,
		`{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"\u0041\ud800"}}`,
		`{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"` + strings.Repeat(`\u0041`, 64) + `"}}`,
		`{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"` + strings.Repeat(`\u0041`, 65) + `"}}`,
	}
	for _, body := range bodies {
		for _, f := range []Format{JSON, NDJSON} {
			for _, maxBatch := range []int{0, 1, 5} {
				for _, maxMetrics := range []int{0, 2, DefaultMaxMetrics} {
					limits := Limits{Batch: maxBatch, Metrics: maxMetrics}
					if diff := checkAgainstReference([]byte(body), f, testNow, limits); diff != "" {
						t.Errorf("Decode(%q, %v, %+v):\n%s", body, f, limits, diff)
					}
				}
			}
		}
	}
}
