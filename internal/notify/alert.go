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
	"sort"
	"strconv"
	"strings"
	"time"
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

// postableAlert is one alert of POST /api/v2/alerts (Alertmanager's
// PostableAlert), as Prometheus sends it.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Encode returns the body of POST /api/v2/alerts for alerts at now.
func (e Encoder) Encode(alerts []Alert, now time.Time) ([]byte, error) {
	out := make([]postableAlert, len(alerts))
	for i, a := range alerts {
		out[i] = e.postable(a, now)
	}
	return json.Marshal(out)
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

func (e Encoder) postable(a Alert, now time.Time) postableAlert {
	now = now.UTC()
	labels := make(map[string]string, 4+len(a.Tags))
	// Tags first, in sorted order, so the reserved labels win and, of two
	// tags that sanitize to one name, the first in order does.
	names := make([]string, 0, len(a.Tags))
	for k := range a.Tags {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		name := LabelName(k)
		v := validUTF8(a.Tags[k])
		if name == "" || v == "" || reserved[name] || strings.HasPrefix(name, "__") {
			continue
		}
		if _, dup := labels[name]; !dup {
			labels[name] = v
		}
	}
	labels["alertname"] = AlertName
	labels["device_id"] = validUTF8(a.DeviceID)
	labels["signal"] = validUTF8(a.Signal)
	labels["severity"] = e.Severity(a.Score)

	opened := unixTime(a.OpenedAt)
	// A device clock ahead of ours must not make Alertmanager reject the
	// alert (startsAt after endsAt) nor keep a closed one firing.
	startsAt := minTime(opened, now)
	var endsAt time.Time
	ann := map[string]string{
		"alert_id":      validUTF8(a.ID),
		"score":         num(a.Score),
		"z_score":       num(a.ZScore),
		"value":         num(a.Value),
		"expected_low":  num(a.Expected.Low),
		"expected_high": num(a.Expected.High),
		"events":        strconv.Itoa(a.Events),
	}
	ann["summary"] = fmt.Sprintf("Device %s: unusual %s (%s, expected %s to %s)",
		labels["device_id"], labels["signal"], num(a.Value), num(a.Expected.Low), num(a.Expected.High))
	desc := fmt.Sprintf("%s of device %s was %s at %s, outside the expected band %s to %s (z-score %s, anomaly score %s).",
		labels["signal"], labels["device_id"], num(a.Value), opened.Format(time.RFC3339), num(a.Expected.Low), num(a.Expected.High), num(a.ZScore), num(a.Score))
	if a.State == StateClosed {
		closed := now // a record without its closing time still resolves
		if a.ClosedAt != nil {
			closed = unixTime(*a.ClosedAt)
		}
		endsAt = maxTime(minTime(closed, now), startsAt)
		desc += fmt.Sprintf(" Back to normal at %s, after %d events.", closed.Format(time.RFC3339), a.Events)
	} else {
		endsAt = now.Add(ResendFactor * e.Resend)
		if endsAt.Before(startsAt) {
			endsAt = startsAt
		}
	}
	ann["description"] = desc
	link := e.Link(a.DeviceID)
	if link != "" {
		ann["link"] = link
	}
	return postableAlert{Labels: labels, Annotations: ann, StartsAt: startsAt, EndsAt: endsAt, GeneratorURL: link}
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
