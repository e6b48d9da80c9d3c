package notify

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr(f float64) *float64 { return &f }

// now is the encoder's clock in these tests.
var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func openAlert() Alert {
	return Alert{
		ID: "a-1", DeviceID: "sensor-42", Signal: "rps", State: StateOpen,
		OpenedAt: float64(now.Add(-90*time.Second).UnixMilli()) / 1000,
		Score:    0.997, ZScore: 8.25, Value: 512.5, Expected: Band{90, 110}, Events: 1,
	}
}

func TestEncode(t *testing.T) {
	enc := Encoder{Resend: time.Minute, LinkBase: "https://pulse.example.com/api"}
	opened := now.Add(-90 * time.Second)
	closed := openAlert()
	closed.State, closed.ClosedAt, closed.Events = StateClosed, ptr(float64(now.Add(-10*time.Second).Unix())), 42
	future := openAlert()
	future.OpenedAt = float64(now.Add(3 * time.Minute).Unix()) // a device clock ahead of ours
	closedFuture := closed
	closedFuture.ClosedAt = ptr(float64(now.Add(time.Hour).Unix()))
	warning := openAlert()
	warning.Score = 0.95
	tagged := openAlert()
	tagged.Tags = map[string]string{"site": "berlin", "severity": "low", "rack.id": "r7", "9lives": "x", "empty": "", "__meta": "m", "alertname": "x"}
	odd := openAlert()
	odd.DeviceID = "dev ice/1&x"

	tests := []struct {
		name               string
		enc                Encoder
		in                 Alert
		labels             map[string]string
		startsAt, endsAt   time.Time
		generatorURL, link string
		descHas            string
	}{
		{"open: endsAt 4 resends ahead", enc, openAlert(),
			map[string]string{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "critical"},
			opened, now.Add(4 * time.Minute),
			"https://pulse.example.com/api/alerts?device_id=sensor-42", "https://pulse.example.com/api/alerts?device_id=sensor-42",
			"rps of device sensor-42 was 512.5 at 2024-05-01T11:58:30Z, outside the expected band 90 to 110 (z-score 8.25, anomaly score 0.997)."},
		{"closed: endsAt its closing", enc, closed,
			map[string]string{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "critical"},
			opened, now.Add(-10 * time.Second),
			"https://pulse.example.com/api/alerts?device_id=sensor-42", "https://pulse.example.com/api/alerts?device_id=sensor-42",
			"Back to normal at 2024-05-01T11:59:50Z, after 42 events."},
		{"opened ahead of our clock: starts now", enc, future,
			map[string]string{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "critical"},
			now, now.Add(4 * time.Minute),
			"https://pulse.example.com/api/alerts?device_id=sensor-42", "https://pulse.example.com/api/alerts?device_id=sensor-42", ""},
		{"closed ahead of our clock: resolved now", enc, closedFuture,
			map[string]string{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "critical"},
			opened, now,
			"https://pulse.example.com/api/alerts?device_id=sensor-42", "https://pulse.example.com/api/alerts?device_id=sensor-42", ""},
		{"below the critical score: warning; no link without base", Encoder{Resend: 30 * time.Second}, warning,
			map[string]string{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "warning"},
			opened, now.Add(2 * time.Minute), "", "", ""},
		{"tags: sanitized, reserved and empty ones left out", enc, tagged,
			map[string]string{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "critical",
				"site": "berlin", "rack_id": "r7", "_9lives": "x"},
			opened, now.Add(4 * time.Minute),
			"https://pulse.example.com/api/alerts?device_id=sensor-42", "https://pulse.example.com/api/alerts?device_id=sensor-42", ""},
		{"device id escaped in the link", enc, odd,
			map[string]string{"alertname": AlertName, "device_id": "dev ice/1&x", "signal": "rps", "severity": "critical"},
			opened, now.Add(4 * time.Minute),
			"https://pulse.example.com/api/alerts?device_id=dev+ice%2F1%26x", "https://pulse.example.com/api/alerts?device_id=dev+ice%2F1%26x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := encodeOne(t, tt.enc, tt.in)
			if !reflect.DeepEqual(p.Labels, tt.labels) {
				t.Errorf("labels = %v, want %v", p.Labels, tt.labels)
			}
			if !p.StartsAt.Equal(tt.startsAt) || !p.EndsAt.Equal(tt.endsAt) {
				t.Errorf("startsAt, endsAt = %v, %v; want %v, %v", p.StartsAt, p.EndsAt, tt.startsAt, tt.endsAt)
			}
			if p.GeneratorURL != tt.generatorURL || p.Annotations["link"] != tt.link {
				t.Errorf("generatorURL, link = %q, %q; want %q, %q", p.GeneratorURL, p.Annotations["link"], tt.generatorURL, tt.link)
			}
			if !strings.Contains(p.Annotations["description"], tt.descHas) {
				t.Errorf("description %q lacks %q", p.Annotations["description"], tt.descHas)
			}
			if p.EndsAt.Before(p.StartsAt) {
				t.Errorf("endsAt %v before startsAt %v: Alertmanager would reject it", p.EndsAt, p.StartsAt)
			}
		})
	}
}

// decoded is an alert of the body, read back.
type decoded struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

func encodeOne(t testing.TB, enc Encoder, a Alert) decoded {
	t.Helper()
	body, err := enc.Encode([]Alert{a}, now)
	if err != nil {
		t.Fatal(err)
	}
	var out []decoded
	if err := json.Unmarshal(body, &out); err != nil || len(out) != 1 {
		t.Fatalf("body %s: %v", body, err)
	}
	return out[0]
}

// Strings JSON must escape, and text that is not UTF-8, arrive as sent
// (the latter with U+FFFD for its bad bytes).
func TestEncodeEscapes(t *testing.T) {
	a := openAlert()
	a.DeviceID = "q\"u\\o\te\n\x01\x7fé\u2028"
	a.Signal = "bad\xffutf8"
	a.Tags = map[string]string{"note": "<b>&amp;</b> \"x\""}
	got := encodeOne(t, Encoder{Resend: time.Minute}, a)
	want := map[string]string{"alertname": AlertName, "device_id": a.DeviceID, "signal": "bad\ufffdutf8",
		"severity": "critical", "note": a.Tags["note"]}
	if !reflect.DeepEqual(got.Labels, want) {
		t.Errorf("labels = %q, want %q", got.Labels, want)
	}
	if !strings.HasPrefix(got.Annotations["summary"], "Device "+a.DeviceID+": unusual bad\ufffdutf8 (") {
		t.Errorf("summary = %q", got.Annotations["summary"])
	}
}

// Several alerts make one array, each alert's labels its own.
func TestEncodeBatch(t *testing.T) {
	x, y := openAlert(), openAlert()
	y.DeviceID, y.Tags = "other", map[string]string{"site": "oslo"}
	x.Tags = map[string]string{"site": "berlin", "rack": "r1"}
	body, err := Encoder{Resend: time.Minute}.Encode([]Alert{x, y}, now)
	if err != nil {
		t.Fatal(err)
	}
	var out []decoded
	if err := json.Unmarshal(body, &out); err != nil || len(out) != 2 {
		t.Fatalf("body %s: %v", body, err)
	}
	if out[0].Labels["site"] != "berlin" || out[0].Labels["rack"] != "r1" || out[1].Labels["site"] != "oslo" || out[1].Labels["rack"] != "" || out[1].Labels["device_id"] != "other" {
		t.Errorf("labels %v, %v", out[0].Labels, out[1].Labels)
	}
	if empty, _ := (Encoder{}).Encode(nil, now); string(empty) != "[]" {
		t.Errorf("no alerts: %s, want []", empty)
	}
}

// The body is what Prometheus posts: an array of alerts with labels,
// annotations, RFC 3339 startsAt/endsAt and generatorURL.
func TestEncodeBody(t *testing.T) {
	body, err := Encoder{Resend: time.Minute}.Encode([]Alert{openAlert()}, now)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"labels": map[string]any{"alertname": AlertName, "device_id": "sensor-42", "signal": "rps", "severity": "critical"},
		"annotations": map[string]any{
			"summary":     "Device sensor-42: unusual rps (512.5, expected 90 to 110)",
			"description": "rps of device sensor-42 was 512.5 at 2024-05-01T11:58:30Z, outside the expected band 90 to 110 (z-score 8.25, anomaly score 0.997).",
			"alert_id":    "a-1", "score": "0.997", "z_score": "8.25", "value": "512.5",
			"expected_low": "90", "expected_high": "110", "events": "1",
		},
		"startsAt": "2024-05-01T11:58:30Z",
		"endsAt":   "2024-05-01T12:04:00Z",
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("body = %s\nwant %v", body, want)
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		critical, score float64
		want            string
	}{
		{0, 0.99, SeverityCritical},
		{0, 0.9899, SeverityWarning},
		{0, 1, SeverityCritical},
		{0, math.NaN(), SeverityWarning},
		{CriticalScoreFor(0.99), 0.995, SeverityWarning},
		{CriticalScoreFor(0.99), 0.999, SeverityCritical},
	}
	for _, tt := range tests {
		if got := (Encoder{CriticalScore: tt.critical}).Severity(tt.score); got != tt.want {
			t.Errorf("critical %v: Severity(%v) = %s, want %s", tt.critical, tt.score, got, tt.want)
		}
	}
}

func TestCriticalScoreFor(t *testing.T) {
	tests := []struct{ threshold, want float64 }{
		{0.9, 0.99}, {0.99, 0.999}, {0.5, 0.95}, {0, DefaultCriticalScore}, {1, DefaultCriticalScore}, {math.NaN(), DefaultCriticalScore},
	}
	for _, tt := range tests {
		if got := CriticalScoreFor(tt.threshold); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("CriticalScoreFor(%v) = %v, want %v", tt.threshold, got, tt.want)
		}
	}
}

func TestLabelName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"site", "site"}, {"Site_2", "Site_2"}, {"rack.id", "rack_id"}, {"9lives", "_9lives"},
		{"zone-é", "zone__"}, {"", ""}, {"_", "_"},
	}
	for _, tt := range tests {
		if got := LabelName(tt.in); got != tt.want {
			t.Errorf("LabelName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{512.5, "512.5"}, {90, "90"}, {0.9971234567, "0.997123"}, {1234567, "1234570"}, {-3.25, "-3.25"},
		{0.00001234, "1.234e-05"}, {0, "0"}, {math.NaN(), "0"}, {math.Inf(1), "1.79769e+308"},
	}
	for _, tt := range tests {
		if got := num(tt.in); got != tt.want {
			t.Errorf("num(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRecord(t *testing.T) {
	inf := openAlert()
	inf.ZScore, inf.Score = math.Inf(1), math.NaN()
	noID := openAlert()
	noID.ID = ""
	badState := openAlert()
	badState.State = "pending"
	closedNoTime := openAlert()
	closedNoTime.State = StateClosed
	tests := []struct {
		name    string
		in      Alert
		wantErr bool
		has     string
	}{
		{"open", openAlert(), false, `"closed_at":null`},
		{"non-finite numbers written as finite", inf, false, `"score":0,"z_score":1.7976931348623157e+308`},
		{"id required", noID, true, ""},
		{"state checked", badState, true, ""},
		{"closed needs closed_at", closedNoTime, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Record(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !strings.Contains(string(rec), tt.has) {
				t.Errorf("record %s lacks %s", rec, tt.has)
			}
			if err == nil {
				var back Alert
				if err := json.Unmarshal(rec, &back); err != nil || back.ID != tt.in.ID {
					t.Errorf("record %s does not read back: %v", rec, err)
				}
			}
		})
	}
}

// Whatever the strings and numbers, the body is valid JSON that
// Alertmanager accepts: valid label names, the device and signal as sent
// (made valid UTF-8), endsAt not before startsAt.
func FuzzEncode(f *testing.F) {
	f.Add("sensor-42", "rps", "site", "berlin", 512.5, 1714564000.25, 1714564100.0, true)
	f.Add("q\"\\\n\x01", "\xff", "9.x", "", math.Inf(1), -1.0, 1e300, false)
	f.Fuzz(func(t *testing.T, device, signal, tagKey, tagValue string, value, opened, closed float64, isOpen bool) {
		a := Alert{ID: "id", DeviceID: device, Signal: signal, State: StateOpen, OpenedAt: opened, Value: value,
			Score: value, ZScore: -value, Expected: Band{value, closed}, Tags: map[string]string{tagKey: tagValue}}
		if !isOpen {
			a.State, a.ClosedAt = StateClosed, &closed
		}
		body, err := Encoder{Resend: time.Minute, LinkBase: "https://x"}.Encode([]Alert{a}, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []decoded
		if err := json.Unmarshal(body, &out); err != nil || len(out) != 1 {
			t.Fatalf("body %q: %v", body, err)
		}
		got := out[0]
		if got.Labels["device_id"] != strings.ToValidUTF8(device, "\uFFFD") || got.Labels["signal"] != strings.ToValidUTF8(signal, "\uFFFD") {
			t.Errorf("labels %q from device %q, signal %q", got.Labels, device, signal)
		}
		for name := range got.Labels {
			if LabelName(name) != name || name == "" {
				t.Errorf("invalid label name %q", name)
			}
		}
		if got.EndsAt.Before(got.StartsAt) || got.StartsAt.After(now) {
			t.Errorf("startsAt %v, endsAt %v (now %v)", got.StartsAt, got.EndsAt, now)
		}
	})
}
