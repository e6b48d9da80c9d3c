// Package notify delivers device alerts to Prometheus Alertmanager: the
// alert as it is delivered and its mapping to Alertmanager's API v2
// (POST /api/v2/alerts, as Prometheus sends it), a bounded per-shard
// outbox in Redis that a takeover or restart carries on, and a sender that
// posts to every configured Alertmanager with retries, re-sends open
// alerts, and counts what it does. docs/ALERTING.md describes the whole.
package notify

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulse-iot/pulse/internal/metric"
)

// Alert states.
const (
	StateOpen   = "open"
	StateClosed = "closed"
)

// AlertName is the alertname label of every device alert.
const AlertName = "PulseDeviceAnomaly"

// Severities, from an alert's score (see Encoder.CriticalScore).
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// DefaultCriticalScore is the score from which an alert is critical when
// no alert threshold is known: CriticalScoreFor(0.9).
const DefaultCriticalScore = 0.99

// Alert is a device alert as the analyzer records it: the record of the
// api's GET /alerts, plus the device's tags. Times are the metric
// timestamps (Unix seconds) of the events that opened and closed it.
type Alert struct {
	ID       string  `json:"id"`
	DeviceID string  `json:"device_id"`
	Signal   string  `json:"signal"`
	State    string  `json:"state"` // StateOpen or StateClosed
	OpenedAt float64 `json:"opened_at"`
	// ClosedAt is nil while the alert is open.
	ClosedAt *float64 `json:"closed_at"`
	// Score, ZScore and Value are the opening event's; Expected is the band
	// the detector expected then.
	Score    float64 `json:"score"`
	ZScore   float64 `json:"z_score"`
	Value    float64 `json:"value"`
	Expected Band    `json:"expected"`
	// Events is how many values the episode spanned so far.
	Events int `json:"events"`
	// Tags are the device's tags; they become labels (see Encoder).
	Tags map[string]string `json:"tags,omitempty"`
}

// Band is the range of values the detector expected.
type Band struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Record returns a's compact JSON: what the outbox and the open-alerts
// hash hold. JSON has no NaN or infinities, and a record that cannot be
// written would stop the batch that carries it, so non-finite numbers
// are written as 0 (NaN) or ±math.MaxFloat64.
func Record(a Alert) ([]byte, error) {
	a.Score, a.ZScore, a.Value = finite(a.Score), finite(a.ZScore), finite(a.Value)
	a.OpenedAt = finite(a.OpenedAt)
	a.Expected = Band{finite(a.Expected.Low), finite(a.Expected.High)}
	if a.ClosedAt != nil {
		c := finite(*a.ClosedAt)
		a.ClosedAt = &c
	}
	if a.State != StateOpen && a.State != StateClosed {
		return nil, fmt.Errorf("alert %s: state %q is neither %q nor %q", a.ID, a.State, StateOpen, StateClosed)
	}
	if a.State == StateClosed && a.ClosedAt == nil {
		return nil, fmt.Errorf("alert %s: closed without closed_at", a.ID)
	}
	if a.ID == "" || a.DeviceID == "" || a.Signal == "" {
		return nil, fmt.Errorf("alert %q of device %q, signal %q: id, device_id and signal are required", a.ID, a.DeviceID, a.Signal)
	}
	return json.Marshal(a)
}

func finite(f float64) float64 {
	switch {
	case math.IsNaN(f):
		return 0
	case math.IsInf(f, 1):
		return math.MaxFloat64
	case math.IsInf(f, -1):
		return -math.MaxFloat64
	}
	return f
}

// CriticalScoreFor returns the score from which an alert is critical when
// alerts open at threshold: where the score's distance to 1 is a tenth of
// the threshold's, i.e. read as a tail probability, an order of magnitude
// rarer than what opens an alert (0.9 → 0.99, 0.99 → 0.999). Thresholds
// outside (0, 1) give DefaultCriticalScore.
func CriticalScoreFor(threshold float64) float64 {
	if !(threshold > 0 && threshold < 1) {
		return DefaultCriticalScore
	}
	return 1 - (1-threshold)/10
}

// Encoder maps alerts to Alertmanager's API v2 payload.
type Encoder struct {
	// Resend is how often open alerts are re-sent; an open alert's endsAt
	// is 4 Resends ahead, as Prometheus does, so Alertmanager neither
	// resolves a live alert between re-sends nor keeps a dead sender's
	// alert firing for long.
	Resend time.Duration
	// LinkBase, when set, is the api's base URL: alerts link to
	// LinkBase/alerts?device_id=… (generatorURL and the link annotation).
	LinkBase string
	// CriticalScore: alerts whose score reaches it are critical, the others
	// warnings. Zero means DefaultCriticalScore.
	CriticalScore float64
}

// ResendFactor is how many re-send intervals ahead an open alert's endsAt
// lies (Prometheus: 4 × its resend delay).
const ResendFactor = 4

// Encode returns the body of POST /api/v2/alerts for alerts at now: a
// JSON array of Alertmanager's PostableAlert (labels, annotations,
// startsAt, endsAt, generatorURL), as Prometheus sends it. It is written
// by hand, labels and annotations sorted by name: encoding/json's maps
// cost five times as much, and re-sends encode every open alert each
// interval.
func (e Encoder) Encode(alerts []Alert, now time.Time) ([]byte, error) {
	b := make([]byte, 0, 1024*len(alerts)+2)
	b = append(b, '[')
	var w alertWriter
	for i, a := range alerts {
		if i > 0 {
			b = append(b, ',')
		}
		b = w.append(b, e, a, now)
	}
	return append(b, ']'), nil
}

// Severity returns the severity label of an alert of score.
func (e Encoder) Severity(score float64) string {
	c := e.CriticalScore
	if c == 0 {
		c = DefaultCriticalScore
	}
	if score >= c {
		return SeverityCritical
	}
	return SeverityWarning
}

// Link returns the api's page of deviceID's alerts, or "" without LinkBase.
func (e Encoder) Link(deviceID string) string {
	if e.LinkBase == "" {
		return ""
	}
	return e.LinkBase + "/alerts?device_id=" + url.QueryEscape(deviceID)
}

// reserved are the labels tags cannot override.
var reserved = map[string]bool{"alertname": true, "device_id": true, "signal": true, "severity": true}

type pair struct{ name, value string }

// alertWriter writes alerts, reusing its scratch space.
type alertWriter struct {
	labels []pair
	names  []string
	desc   []byte
}

func (w *alertWriter) append(b []byte, e Encoder, a Alert, now time.Time) []byte {
	now = now.UTC()
	device, signal := validUTF8(a.DeviceID), validUTF8(a.Signal)
	w.labels = append(w.labels[:0],
		pair{"alertname", AlertName}, pair{"device_id", device}, pair{"signal", signal}, pair{"severity", e.Severity(a.Score)})
	// Tags in sorted order, so that of two that sanitize to one name the
	// first in order wins; reserved names and empty values are left out.
	w.names = w.names[:0]
	for k := range a.Tags {
		w.names = append(w.names, k)
	}
	slices.Sort(w.names)
	for _, k := range w.names {
		name, v := LabelName(k), validUTF8(a.Tags[k])
		if name == "" || v == "" || reserved[name] || strings.HasPrefix(name, "__") || hasLabel(w.labels, name) {
			continue
		}
		w.labels = append(w.labels, pair{name, v})
	}
	slices.SortFunc(w.labels, func(x, y pair) int { return strings.Compare(x.name, y.name) })

	opened := unixTime(a.OpenedAt)
	// A device clock ahead of ours must not make Alertmanager reject the
	// alert (startsAt after endsAt) nor keep a closed one firing.
	startsAt := minTime(opened, now)
	value, low, high := num(a.Value), num(a.Expected.Low), num(a.Expected.High)
	z, score := num(a.ZScore), num(a.Score)
	d := append(w.desc[:0], signal...)
	d = append(d, " of device "...)
	d = append(d, device...)
	d = append(d, " was "...)
	d = append(d, value...)
	d = append(d, " at "...)
	d = opened.AppendFormat(d, time.RFC3339)
	d = append(d, ", outside the expected band "...)
	d = append(d, low...)
	d = append(d, " to "...)
	d = append(d, high...)
	d = append(d, " (z-score "...)
	d = append(d, z...)
	d = append(d, ", anomaly score "...)
	d = append(d, score...)
	d = append(d, ")."...)
	var endsAt time.Time
	if a.State == StateClosed {
		closed := now // a record without its closing time still resolves
		if a.ClosedAt != nil {
			closed = unixTime(*a.ClosedAt)
		}
		endsAt = maxTime(minTime(closed, now), startsAt)
		d = append(d, " Back to normal at "...)
		d = closed.AppendFormat(d, time.RFC3339)
		d = append(d, ", after "...)
		d = strconv.AppendInt(d, int64(a.Events), 10)
		d = append(d, " events."...)
	} else {
		endsAt = maxTime(now.Add(ResendFactor*e.Resend), startsAt)
	}
	w.desc = d
	link := e.Link(a.DeviceID)

	b = append(b, `{"labels":{`...)
	for i, l := range w.labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = metric.AppendJSONString(b, l.name)
		b = append(b, ':')
		b = metric.AppendJSONString(b, l.value)
	}
	// Annotations in name order.
	b = append(b, `},"annotations":{"alert_id":`...)
	b = metric.AppendJSONString(b, validUTF8(a.ID))
	b = append(b, `,"description":`...)
	b = metric.AppendJSONString(b, string(d))
	b = append(b, `,"events":"`...)
	b = strconv.AppendInt(b, int64(a.Events), 10)
	b = append(b, `","expected_high":"`...)
	b = append(b, high...)
	b = append(b, `","expected_low":"`...)
	b = append(b, low...)
	b = append(b, '"')
	if link != "" {
		b = append(b, `,"link":`...)
		b = metric.AppendJSONString(b, link)
	}
	b = append(b, `,"score":"`...)
	b = append(b, score...)
	b = append(b, `","summary":`...)
	b = metric.AppendJSONString(b, "Device "+device+": unusual "+signal+" ("+value+", expected "+low+" to "+high+")")
	b = append(b, `,"value":"`...)
	b = append(b, value...)
	b = append(b, `","z_score":"`...)
	b = append(b, z...)
	b = append(b, `"},"startsAt":"`...)
	b = startsAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","endsAt":"`...)
	b = endsAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if link != "" {
		b = append(b, `,"generatorURL":`...)
		b = metric.AppendJSONString(b, link)
	}
	return append(b, '}')
}

func hasLabel(labels []pair, name string) bool {
	for _, l := range labels {
		if l.name == name {
			return true
		}
	}
	return false
}

// LabelName returns s as a valid Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*, which Alertmanager 0.25 requires): every other
// character becomes '_', and a leading digit gets a '_' before it, as
// Prometheus' relabelling conventions do. "" stays "".
func LabelName(s string) string {
	if s == "" {
		return ""
	}
	b := []byte(s)
	valid := true
	for i, c := range b {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			valid = false
			break
		}
	}
	if valid {
		return s
	}
	var sb strings.Builder
	if '0' <= s[0] && s[0] <= '9' {
		sb.WriteByte('_')
	}
	for _, r := range s {
		if r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// unixTime converts Unix seconds to a UTC time at millisecond precision,
// within 1970 to 5138 so that the conversion cannot overflow.
func unixTime(sec float64) time.Time {
	sec = math.Min(math.Max(finite(sec), 0), 1e11)
	return time.UnixMilli(int64(math.Round(sec * 1000))).UTC()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// num formats a value for people: six significant digits, without an
// exponent in the usual ranges.
func num(f float64) string {
	f = finite(f)
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 6, 64), 64)
	if a := math.Abs(r); a == 0 || a >= 1e-4 && a < 1e15 {
		return strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strconv.FormatFloat(r, 'g', -1, 64)
}
