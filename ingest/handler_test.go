package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

// The test configuration (baseEnv) allows 5 metrics and 4096 bytes.
const (
	testMaxBatch = 5
	testMaxBody  = 4096
)

// padded returns obj followed by spaces up to n bytes: still one valid
// JSON object.
func padded(t *testing.T, obj string, n int) []byte {
	t.Helper()
	if len(obj) > n {
		t.Fatalf("object longer than %d bytes", n)
	}
	return []byte(obj + strings.Repeat(" ", n-len(obj)))
}

func ev(device string, cpu, rps, ts float64) stream.Event {
	return stream.Event{DeviceID: device, CPU: cpu, RPS: rps, Timestamp: ts}
}

func post(h http.Handler, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/metrics", bytes.NewReader(body))
	req.Header = header.Clone()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// jsonValue decodes b into a generic value for comparison.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("response %q is not JSON: %v", b, err)
	}
	return v
}

func TestPostMetricsAccepted(t *testing.T) {
	t.Parallel()
	const ts = 1700000000
	five := `[` +
		`{"device_id":"sensor-1","cpu":1,"rps":10,"timestamp":1700000001},` +
		`{"device_id":"sensor-2","cpu":2,"rps":20,"timestamp":1700000002},` +
		`{"device_id":"sensor-3","cpu":3,"rps":30,"timestamp":1700000003},` +
		`{"device_id":"sensor-1","cpu":4,"rps":40,"timestamp":1700000004},` +
		`{"device_id":"rack.7:node-9","cpu":100,"rps":0,"timestamp":1700000005}]`
	fiveEvents := []stream.Event{
		ev("sensor-1", 1, 10, 1700000001), ev("sensor-2", 2, 20, 1700000002), ev("sensor-3", 3, 30, 1700000003),
		ev("sensor-1", 4, 40, 1700000004), ev("rack.7:node-9", 100, 0, 1700000005),
	}
	ndjson := "{\"device_id\":\"a\",\"cpu\":10,\"rps\":1,\"timestamp\":1700000010}\r\n\n" +
		"{\"device_id\":\"b\",\"cpu\":20,\"rps\":2,\"timestamp\":1700000020}\n" +
		"{\"device_id\":\"a\",\"cpu\":30,\"rps\":3,\"timestamp\":1700000030}\n"
	ndjsonEvents := []stream.Event{ev("a", 10, 1, 1700000010), ev("b", 20, 2, 1700000020), ev("a", 30, 3, 1700000030)}
	single := `{"device_id":"sensor-1","cpu":50.5,"rps":120,"timestamp":1700000000}`
	singleBody := `{"status":"ok","metric":{"device_id":"sensor-1","cpu":50.5,"rps":120,"timestamp":1700000000}}`
	jsonCT := hdr("Content-Type", "application/json")

	tests := []struct {
		name       string
		header     http.Header
		body       []byte
		wantBody   string
		wantEvents []stream.Event
	}{
		{"one object", jsonCT, []byte(single), singleBody, []stream.Event{ev("sensor-1", 50.5, 120, ts)}},
		{"no content type is JSON", nil, []byte(single), singleBody, []stream.Event{ev("sensor-1", 50.5, 120, ts)}},
		{"charset parameter", hdr("Content-Type", "application/json; charset=utf-8"), []byte(single), singleBody,
			[]stream.Event{ev("sensor-1", 50.5, 120, ts)}},
		{"RFC 3339 timestamp is normalized to Unix seconds", jsonCT,
			[]byte(`{"timestamp":"2024-01-02T03:04:05.5Z","rps":7,"cpu":0,"device_id":"d-1"}`),
			`{"status":"ok","metric":{"device_id":"d-1","cpu":0,"rps":7,"timestamp":1704164645.5}}`,
			[]stream.Event{ev("d-1", 0, 7, 1704164645.5)}},
		{"array of MAX_BATCH", jsonCT, []byte(five), `{"status":"ok","accepted":5}`, fiveEvents},
		{"array of one", jsonCT, []byte(`[` + single + `]`), `{"status":"ok","accepted":1}`, []stream.Event{ev("sensor-1", 50.5, 120, ts)}},
		{"NDJSON with blank line and CRLF", hdr("Content-Type", "application/x-ndjson"), []byte(ndjson),
			`{"status":"ok","accepted":3}`, ndjsonEvents},
		{"gzip array", hdr("Content-Type", "application/json", "Content-Encoding", "gzip"), gz(t, []byte(five)),
			`{"status":"ok","accepted":5}`, fiveEvents},
		{"gzip NDJSON", hdr("Content-Type", "application/x-ndjson", "Content-Encoding", "gzip"), gz(t, []byte(ndjson)),
			`{"status":"ok","accepted":3}`, ndjsonEvents},
		{"identity encoding", hdr("Content-Type", "application/json", "Content-Encoding", "identity"), []byte(single), singleBody,
			[]stream.Event{ev("sensor-1", 50.5, 120, ts)}},
		{"body of exactly MAX_BODY_BYTES", jsonCT, padded(t, single, testMaxBody), singleBody,
			[]stream.Event{ev("sensor-1", 50.5, 120, ts)}},
		{"gzip body inflating to exactly MAX_BODY_BYTES", hdr("Content-Encoding", "gzip"), gz(t, padded(t, single, testMaxBody)), singleBody,
			[]stream.Event{ev("sensor-1", 50.5, 120, ts)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestIngest(t, baseEnv(t, redisSrv))
			before := time.Now().UnixNano()
			rec := post(in.handler, tc.header, tc.body)
			after := time.Now().UnixNano()

			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
			}
			if got, want := jsonValue(t, rec.Body.Bytes()), jsonValue(t, []byte(tc.wantBody)); !reflect.DeepEqual(got, want) {
				t.Errorf("body %s, want %s", rec.Body, tc.wantBody)
			}
			stored := storedEvents(t, in.rdb, in.keys, in.cfg.Shards)
			if got, want := withoutReceipt(stored), byShard(tc.wantEvents, in.cfg.Shards); !reflect.DeepEqual(got, want) {
				t.Errorf("streams hold %+v, want %+v", got, want)
			}
			receipts := map[int64]bool{}
			for _, evs := range stored {
				for _, e := range evs {
					receipts[e.Receipt] = true
				}
			}
			for rt := range receipts {
				if len(receipts) != 1 || rt < before || rt > after {
					t.Errorf("receipts %v: want one time, within the request [%d, %d]", receipts, before, after)
				}
			}
		})
	}
}

// storedFields returns the fields of every entry of every shard's stream,
// by shard, in stream order, without rt (the receipt time).
func storedFields(t *testing.T, in *testIngest) map[int][]map[string]any {
	t.Helper()
	out := map[int][]map[string]any{}
	for s := 0; s < in.cfg.Shards; s++ {
		msgs, err := in.rdb.XRange(context.Background(), in.keys.Stream(s), "-", "+").Result()
		if err != nil {
			t.Fatalf("xrange %s: %v", in.keys.Stream(s), err)
		}
		for _, msg := range msgs {
			if _, ok := msg.Values["rt"]; !ok {
				t.Errorf("entry %s has no rt: %v", msg.ID, msg.Values)
			}
			delete(msg.Values, "rt")
			out[s] = append(out[s], msg.Values)
		}
	}
	return out
}

// Named metrics and tags reach the stream as fields m and g, in the
// object's order, and cpu or rps only when the object carried them.
func TestPostMetricsNamedMetricsAndTags(t *testing.T) {
	t.Parallel()
	jsonCT := hdr("Content-Type", "application/json")
	type entry = map[string]any
	tests := []struct {
		name     string
		header   http.Header
		body     string
		wantBody string
		want     map[string][]entry // by device
	}{
		{"metrics and tags without cpu and rps", jsonCT,
			`{"device_id":"sensor-1","timestamp":1700000000,"metrics":{"temperature":21.5,"battery_v":3.71},"tags":{"site":"berlin","model":"x1"}}`,
			`{"status":"ok","metric":{"device_id":"sensor-1","timestamp":1700000000,"metrics":{"temperature":21.5,"battery_v":3.71},"tags":{"site":"berlin","model":"x1"}}}`,
			map[string][]entry{"sensor-1": {{"d": "sensor-1", "t": "1.7e+09", "m": "temperature=21.5,battery_v=3.71", "g": "site=berlin,model=x1"}}}},
		{"metrics beside cpu", jsonCT,
			`{"device_id":"sensor-1","cpu":12.5,"timestamp":1700000000,"metrics":{"\u0074emp":-0,"x":1e-7}}`,
			`{"status":"ok","metric":{"device_id":"sensor-1","cpu":12.5,"timestamp":1700000000,"metrics":{"temp":0,"x":1e-7}}}`,
			map[string][]entry{"sensor-1": {{"d": "sensor-1", "c": "12.5", "t": "1.7e+09", "m": "temp=0,x=1e-07"}}}},
		{"tags on the original shape", jsonCT,
			`{"device_id":"sensor-1","cpu":1,"rps":2,"timestamp":1700000000,"tags":{"site":"b:1"}}`,
			`{"status":"ok","metric":{"device_id":"sensor-1","cpu":1,"rps":2,"timestamp":1700000000,"tags":{"site":"b:1"}}}`,
			map[string][]entry{"sensor-1": {{"d": "sensor-1", "c": "1", "r": "2", "t": "1.7e+09", "g": "site=b:1"}}}},
		{"empty metrics and tags are the original shape", jsonCT,
			`{"device_id":"sensor-1","cpu":1,"rps":2,"timestamp":1700000000,"metrics":{},"tags":{}}`,
			`{"status":"ok","metric":{"device_id":"sensor-1","cpu":1,"rps":2,"timestamp":1700000000}}`,
			map[string][]entry{"sensor-1": {{"d": "sensor-1", "c": "1", "r": "2", "t": "1.7e+09"}}}},
		{"NDJSON of both shapes", hdr("Content-Type", "application/x-ndjson"),
			`{"device_id":"a","cpu":1,"rps":2,"timestamp":1700000000}` + "\n" +
				`{"device_id":"a","rps":3,"timestamp":1700000001,"metrics":{"battery_v":3.7}}` + "\n" +
				`{"device_id":"b","timestamp":1700000002,"metrics":{"t":1},"tags":{"k":"v"}}` + "\n",
			`{"status":"ok","accepted":3}`,
			map[string][]entry{
				"a": {{"d": "a", "c": "1", "r": "2", "t": "1.7e+09"}, {"d": "a", "r": "3", "t": "1.700000001e+09", "m": "battery_v=3.7"}},
				"b": {{"d": "b", "t": "1.700000002e+09", "m": "t=1", "g": "k=v"}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestIngest(t, baseEnv(t, redisSrv))
			rec := post(in.handler, tc.header, []byte(tc.body))
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
			}
			if got, want := jsonValue(t, rec.Body.Bytes()), jsonValue(t, []byte(tc.wantBody)); !reflect.DeepEqual(got, want) {
				t.Errorf("body %s, want %s", rec.Body, tc.wantBody)
			}
			want := map[int][]entry{}
			for device, entries := range tc.want {
				want[shard.For(device, in.cfg.Shards)] = append(want[shard.For(device, in.cfg.Shards)], entries...)
			}
			if got := storedFields(t, in); !reflect.DeepEqual(got, want) {
				t.Errorf("streams hold %v, want %v", got, want)
			}
			// What the analyzers will read back.
			for _, evs := range storedEvents(t, in.rdb, in.keys, in.cfg.Shards) {
				for _, e := range evs {
					if (e.NoCPU || e.NoRPS) && len(e.Metrics) == 0 {
						t.Errorf("event %+v lacks a signal without named metrics", e)
					}
				}
			}
		})
	}
}

// MAX_METRICS bounds the named metrics of each object.
func TestPostMetricsMaxMetrics(t *testing.T) {
	t.Parallel()
	in := newTestIngest(t, baseEnv(t, redisSrv, "MAX_METRICS=2"))
	if rec := post(in.handler, nil, []byte(`{"device_id":"d","metrics":{"a":1,"b":2,"c":3}}`)); rec.Code != http.StatusBadRequest ||
		!strings.Contains(rec.Body.String(), `{"index":0,"field":"metrics","reason":"`+metric.ReasonTooManyMetrics+`"}`) {
		t.Errorf("3 metrics: %d %s, want 400 naming metrics", rec.Code, rec.Body)
	}
	if rec := post(in.handler, nil, []byte(`{"device_id":"d","metrics":{"a":1,"b":2}}`)); rec.Code != http.StatusAccepted {
		t.Errorf("2 metrics: %d %s, want 202", rec.Code, rec.Body)
	}
}

func TestPostMetricsDefaultsTimestampToReceiptTime(t *testing.T) {
	t.Parallel()
	in := newTestIngest(t, baseEnv(t, redisSrv))
	before := float64(time.Now().UnixNano()) / 1e9
	rec := post(in.handler, nil, []byte(`{"device_id":"no-clock","cpu":12.5,"rps":3}`))
	after := float64(time.Now().UnixNano()) / 1e9
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
	}
	var resp struct {
		Status string `json:"status"`
		Metric struct {
			DeviceID  string  `json:"device_id"`
			CPU       float64 `json:"cpu"`
			RPS       float64 `json:"rps"`
			Timestamp float64 `json:"timestamp"`
		} `json:"metric"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != "ok" || resp.Metric.DeviceID != "no-clock" || resp.Metric.CPU != 12.5 || resp.Metric.RPS != 3 {
		t.Errorf("response %s", rec.Body)
	}
	// A microsecond of slack for float rounding of Unix seconds.
	if ts := resp.Metric.Timestamp; ts < before-1e-6 || ts > after+1e-6 {
		t.Errorf("timestamp %f, want the receipt time within [%f, %f]", ts, before, after)
	}
	stored := storedEvents(t, in.rdb, in.keys, in.cfg.Shards)[shard.For("no-clock", in.cfg.Shards)]
	if len(stored) != 1 {
		t.Fatalf("stream holds %d events, want 1", len(stored))
	}
	if stored[0].Timestamp != resp.Metric.Timestamp {
		t.Errorf("stored timestamp %v, response says %v", stored[0].Timestamp, resp.Metric.Timestamp)
	}
	if d := stored[0].Timestamp - float64(stored[0].Receipt)/1e9; d < -1e-6 || d > 1e-6 {
		t.Errorf("timestamp %f differs from receipt %d by %gs", stored[0].Timestamp, stored[0].Receipt, d)
	}
}

type errorDetail struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type errorBody struct {
	Error   string        `json:"error"`
	Details []errorDetail `json:"details"`
}

func TestPostMetricsRejected(t *testing.T) {
	t.Parallel()
	obj := func(i int) string {
		return fmt.Sprintf(`{"device_id":"dev-%d","cpu":%d,"rps":%d,"timestamp":1700000000}`, i, i, i)
	}
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = obj(i)
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	lines := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = obj(i)
		}
		return strings.Join(items, "\n")
	}
	oneBad := `[` + obj(0) + `,` + obj(1) + `,{"device_id":"dev-2","cpu":2,"rps":-1},` + obj(3) + `]`
	// A gzip bomb: about a kilobyte that inflates far beyond MAX_BODY_BYTES.
	bomb := gz(t, append([]byte(`[`+obj(0)), bytes.Repeat([]byte(" "), 1<<20)...))
	if len(bomb) >= testMaxBody {
		t.Fatalf("bomb is %d bytes compressed: must be under MAX_BODY_BYTES to test the limit after decompression", len(bomb))
	}
	truncated := gz(t, []byte(batch(3)))
	truncated = truncated[:len(truncated)-6]
	jsonCT := hdr("Content-Type", "application/json")
	ndjsonCT := hdr("Content-Type", "application/x-ndjson")
	tooMany := []errorDetail{{Index: testMaxBatch, Reason: fmt.Sprintf("more than %d metrics", testMaxBatch)}}
	// Named metrics and tags: the defaults allow 16 metrics and 8 tags.
	named := func(metrics string) []byte {
		return []byte(`{"device_id":"d","timestamp":1700000000,"metrics":` + metrics + `}`)
	}
	tagged := func(tags string) []byte {
		return []byte(`{"device_id":"d","cpu":1,"rps":1,"tags":` + tags + `}`)
	}
	var seventeen, nine []string
	for i := range 17 {
		seventeen = append(seventeen, fmt.Sprintf(`"m%d":%d`, i, i))
	}
	for i := range 9 {
		nine = append(nine, fmt.Sprintf(`"k%d":"v"`, i))
	}
	badNamed := func(field, reason string) []errorDetail {
		return []errorDetail{{Index: 0, Field: field, Reason: reason}}
	}

	tests := []struct {
		name        string
		header      http.Header
		body        []byte
		wantStatus  int
		wantDetails []errorDetail
		wantReason  string // label of pulse_events_rejected_total
	}{
		{"malformed JSON", jsonCT, []byte(`{"device_id":`), 400,
			[]errorDetail{{Index: 0, Reason: "unexpected end of input at offset 13"}}, "invalid"},
		{"cpu out of range", jsonCT, []byte(`{"device_id":"d","cpu":150,"rps":1}`), 400,
			[]errorDetail{{Index: 0, Field: "cpu", Reason: metric.ReasonCPURange}}, "invalid"},
		{"one invalid item rejects the batch", jsonCT, []byte(oneBad), 400,
			[]errorDetail{{Index: 2, Field: "rps", Reason: metric.ReasonRPSRange}}, "invalid"},
		{"every problem of a batch is reported", jsonCT,
			[]byte(`[{"cpu":1,"rps":1},` + obj(1) + `,` + obj(2) + `,{"device_id":"x","cpu":1,"rps":1,"temp":3}]`), 400,
			[]errorDetail{{Index: 0, Field: "device_id", Reason: metric.ReasonRequired}, {Index: 3, Field: "temp", Reason: metric.ReasonUnknownField}},
			"invalid"},
		{"invalid device id", jsonCT, []byte(`{"device_id":"has space","cpu":1,"rps":1}`), 400,
			[]errorDetail{{Index: 0, Field: "device_id", Reason: metric.ReasonDeviceID}}, "invalid"},
		{"timestamp in the future", jsonCT, []byte(`{"device_id":"d","cpu":1,"rps":1,"timestamp":9999999999}`), 400,
			[]errorDetail{{Index: 0, Field: "timestamp", Reason: metric.ReasonFuture}}, "invalid"},
		{"NDJSON with one bad line", ndjsonCT, []byte(obj(0) + "\n\n" + `{"device_id":"d","cpu":"abc","rps":1}` + "\n" + obj(2)), 400,
			[]errorDetail{{Index: 1, Field: "cpu", Reason: metric.ReasonNumber}}, "invalid"},
		{"empty body", jsonCT, nil, 400, []errorDetail{{Reason: metric.ReasonEmptyBody}}, "invalid"},
		{"empty batch", jsonCT, []byte(`[]`), 400, []errorDetail{{Reason: metric.ReasonEmptyBatch}}, "invalid"},
		{"not an object", jsonCT, []byte(`42`), 400, []errorDetail{{Reason: metric.ReasonTopLevel}}, "invalid"},
		{"gzip batch with an invalid item", hdr("Content-Type", "application/json", "Content-Encoding", "gzip"), gz(t, []byte(oneBad)), 400,
			[]errorDetail{{Index: 2, Field: "rps", Reason: metric.ReasonRPSRange}}, "invalid"},
		{"metric name upper case", jsonCT, named(`{"Temp":1}`), 400, badNamed("metrics.Temp", metric.ReasonMetricName), "invalid"},
		{"metric name too long", jsonCT, named(`{"` + strings.Repeat("a", 65) + `":1}`), 400,
			badNamed("metrics."+strings.Repeat("a", 65), metric.ReasonMetricName), "invalid"},
		{"metric name cpu", jsonCT, named(`{"a":1,"cpu":50}`), 400, badNamed("metrics.cpu", metric.ReasonReservedName), "invalid"},
		{"metric name rps", jsonCT, named(`{"rps":50}`), 400, badNamed("metrics.rps", metric.ReasonReservedName), "invalid"},
		{"metric name twice", jsonCT, named(`{"a":1,"a":2}`), 400, badNamed("metrics.a", metric.ReasonDuplicate), "invalid"},
		{"metric value a string", jsonCT, named(`{"a":"21.5"}`), 400, badNamed("metrics.a", metric.ReasonFiniteNumber), "invalid"},
		{"metric value null", jsonCT, named(`{"a":null}`), 400, badNamed("metrics.a", metric.ReasonFiniteNumber), "invalid"},
		{"metric value beyond float64", jsonCT, named(`{"a":1e999}`), 400, badNamed("metrics.a", metric.ReasonFiniteNumber), "invalid"},
		{"metric value NaN", jsonCT, named(`{"a":NaN}`), 400, []errorDetail{{Index: 0, Reason: "invalid character 'N' at offset 55"}}, "invalid"},
		{"more than MAX_METRICS", jsonCT, named(`{` + strings.Join(seventeen, ",") + `}`), 400, badNamed("metrics", metric.ReasonTooManyMetrics), "invalid"},
		{"metrics an array", jsonCT, named(`[1]`), 400, badNamed("metrics", metric.ReasonNotObject), "invalid"},
		{"metrics empty without cpu and rps", jsonCT, named(`{}`), 400, badNamed("metrics", metric.ReasonNoMetric), "invalid"},
		{"tags without metrics, cpu or rps", jsonCT, []byte(`{"device_id":"d","tags":{"k":"v"}}`), 400,
			[]errorDetail{{Index: 0, Field: "cpu", Reason: metric.ReasonRequired}, {Index: 0, Field: "rps", Reason: metric.ReasonRequired}}, "invalid"},
		{"tags a string", jsonCT, tagged(`"site=berlin"`), 400, badNamed("tags", metric.ReasonNotObject), "invalid"},
		{"more than 8 tags", jsonCT, tagged(`{` + strings.Join(nine, ",") + `}`), 400, badNamed("tags", metric.ReasonTooManyTags), "invalid"},
		{"tag key upper case", jsonCT, tagged(`{"Site":"berlin"}`), 400, badNamed("tags.Site", metric.ReasonTagKey), "invalid"},
		{"tag value with a space", jsonCT, tagged(`{"site":"new york"}`), 400, badNamed("tags.site", metric.ReasonTagValue), "invalid"},
		{"tag value empty", jsonCT, tagged(`{"site":""}`), 400, badNamed("tags.site", metric.ReasonTagValue), "invalid"},
		{"tag value a number", jsonCT, tagged(`{"site":1}`), 400, badNamed("tags.site", metric.ReasonString), "invalid"},
		{"tag key twice", jsonCT, tagged(`{"site":"a","site":"b"}`), 400, badNamed("tags.site", metric.ReasonDuplicate), "invalid"},
		{"a bad named metric rejects the batch", jsonCT,
			[]byte(`[` + obj(0) + `,{"device_id":"d","metrics":{"ok":1}},{"device_id":"d","metrics":{"t":1,"Bad":2},"tags":{"k":"v w"}}]`), 400,
			[]errorDetail{{Index: 2, Field: "metrics.Bad", Reason: metric.ReasonMetricName}, {Index: 2, Field: "tags.k", Reason: metric.ReasonTagValue}}, "invalid"},
		{"NDJSON with a bad tag", ndjsonCT, []byte(obj(0) + "\n" + `{"device_id":"d","metrics":{"t":1},"tags":{"k":""}}`), 400,
			[]errorDetail{{Index: 1, Field: "tags.k", Reason: metric.ReasonTagValue}}, "invalid"},
		{"gzip header on a plain body", hdr("Content-Encoding", "gzip"), []byte(obj(0)), 400, nil, "invalid"},
		{"truncated gzip", hdr("Content-Encoding", "gzip"), truncated, 400, nil, "invalid"},
		{"text/plain", hdr("Content-Type", "text/plain"), []byte(obj(0)), 415, nil, "unsupported_media"},
		{"form", hdr("Content-Type", "application/x-www-form-urlencoded"), []byte("device_id=d"), 415, nil, "unsupported_media"},
		{"unparsable content type", hdr("Content-Type", "application/json; ;;"), []byte(obj(0)), 415, nil, "unsupported_media"},
		{"brotli", hdr("Content-Type", "application/json", "Content-Encoding", "br"), []byte(obj(0)), 415, nil, "unsupported_media"},
		{"body over MAX_BODY_BYTES", jsonCT, padded(t, obj(0), testMaxBody+1), 413, nil, "too_large"},
		{"gzip bomb", hdr("Content-Type", "application/json", "Content-Encoding", "gzip"), bomb, 413, nil, "too_large"},
		{"batch over MAX_BATCH", jsonCT, []byte(batch(testMaxBatch + 1)), 413, tooMany, "too_large"},
		{"NDJSON over MAX_BATCH", ndjsonCT, []byte(lines(testMaxBatch + 1)), 413, tooMany, "too_large"},
		{"gzip batch over MAX_BATCH", hdr("Content-Encoding", "gzip"), gz(t, []byte(batch(testMaxBatch+1))), 413, tooMany, "too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestIngest(t, baseEnv(t, redisSrv))
			rec := post(in.handler, tc.header, tc.body)

			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if body.Error == "" {
				t.Errorf("body %s has no error message", rec.Body)
			}
			if !reflect.DeepEqual(body.Details, tc.wantDetails) {
				t.Errorf("details %+v, want %+v", body.Details, tc.wantDetails)
			}
			for s := 0; s < in.cfg.Shards; s++ {
				if n, err := in.rdb.Exists(context.Background(), in.keys.Stream(s)).Result(); err != nil || n != 0 {
					t.Errorf("stream %s exists (%d, %v): a rejected request must store nothing", in.keys.Stream(s), n, err)
				}
			}
			expo := scrape(t, in.handler)
			if v, _ := promtext.Value(t, expo, "pulse_events_rejected_total", map[string]string{"reason": tc.wantReason}); v != 1 {
				t.Errorf("pulse_events_rejected_total{reason=%q} = %v, want 1", tc.wantReason, v)
			}
			if v, _ := promtext.Value(t, expo, "pulse_events_accepted_total", nil); v != 0 {
				t.Errorf("pulse_events_accepted_total = %v, want 0", v)
			}
		})
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/prometheus", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /prometheus: %d", rec.Code)
	}
	return rec.Body.String()
}

func TestIngestMetricsCountRequests(t *testing.T) {
	t.Parallel()
	in := newTestIngest(t, baseEnv(t, redisSrv))
	jsonCT := hdr("Content-Type", "application/json")
	requests := []struct {
		header     http.Header
		body       string
		wantStatus int
	}{
		{jsonCT, `{"device_id":"a","cpu":1,"rps":1}`, 202},
		{jsonCT, `[{"device_id":"a","cpu":1,"rps":1},{"device_id":"b","cpu":1,"rps":1},{"device_id":"c","cpu":1,"rps":1}]`, 202},
		{jsonCT, `{"device_id":"a","cpu":-1,"rps":1}`, 400},
		{jsonCT, `{`, 400},
		{hdr("Content-Type", "text/csv"), `a,1,1`, 415},
		{jsonCT, `[{"device_id":"a","cpu":1,"rps":1},{"device_id":"a","cpu":1,"rps":1},{"device_id":"a","cpu":1,"rps":1},` +
			`{"device_id":"a","cpu":1,"rps":1},{"device_id":"a","cpu":1,"rps":1},{"device_id":"a","cpu":1,"rps":1}]`, 413},
	}
	for i, r := range requests {
		if rec := post(in.handler, r.header, []byte(r.body)); rec.Code != r.wantStatus {
			t.Fatalf("request %d: status %d, want %d; body %s", i, rec.Code, r.wantStatus, rec.Body)
		}
	}
	expo := scrape(t, in.handler)
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"pulse_events_accepted_total", nil, 4},
		{"pulse_events_rejected_total", map[string]string{"reason": "invalid"}, 2},
		{"pulse_events_rejected_total", map[string]string{"reason": "unsupported_media"}, 1},
		{"pulse_events_rejected_total", map[string]string{"reason": "too_large"}, 1},
		{"pulse_events_rejected_total", map[string]string{"reason": "unavailable"}, 0},
		{"http_requests_total", map[string]string{"service": "ingest", "method": "POST", "route": "/metrics", "code": "202"}, 2},
		{"http_requests_total", map[string]string{"service": "ingest", "method": "POST", "route": "/metrics", "code": "400"}, 2},
		{"http_requests_total", map[string]string{"service": "ingest", "method": "POST", "route": "/metrics", "code": "415"}, 1},
		{"http_requests_total", map[string]string{"service": "ingest", "method": "POST", "route": "/metrics", "code": "413"}, 1},
	}
	for _, w := range want {
		v, ok := promtext.Value(t, expo, w.name, w.labels)
		if !ok || v != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}
}

func TestIngestServiceEndpoints(t *testing.T) {
	t.Parallel()
	in := newTestIngest(t, baseEnv(t, redisSrv))
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{http.MethodGet, "/health", 200, `{"status":"healthy"}`},
		{http.MethodGet, "/ready", 200, `{"status":"ready"}`},
		{http.MethodGet, "/metrics", 405, `{"error":"method not allowed"}`},
		{http.MethodGet, "/nowhere", 404, `{"error":"not found"}`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			in.handler.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if got, want := jsonValue(t, rec.Body.Bytes()), jsonValue(t, []byte(tc.wantBody)); !reflect.DeepEqual(got, want) {
				t.Errorf("body %s, want %s", rec.Body, tc.wantBody)
			}
		})
	}
}

// Concurrent requests share Redis pipelines (group commit); each must get
// its own answer and have each of its events stored exactly once.
func TestPostMetricsConcurrentRequestsStoreEachEventOnce(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "MAX_BATCH=1000", "MAX_BODY_BYTES=1048576")
	in := newTestIngest(t, env)
	const clients, perClient = 16, 10
	var mu sync.Mutex
	sent := map[string]stream.Event{}
	var wg sync.WaitGroup
	errs := make(chan string, clients*perClient)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < perClient; r++ {
				n := 1 + (c+r)%7
				var items []string
				var evs []stream.Event
				for i := 0; i < n; i++ {
					e := ev(fmt.Sprintf("c%d-r%d-e%d", c, r, i), float64(i), float64(c*1000+r), 1700000000+float64(i))
					evs = append(evs, e)
					items = append(items, fmt.Sprintf(`{"device_id":%q,"cpu":%v,"rps":%v,"timestamp":%v}`, e.DeviceID, e.CPU, e.RPS, e.Timestamp))
				}
				rec := post(in.handler, nil, []byte("["+strings.Join(items, ",")+"]"))
				var body struct {
					Status   string `json:"status"`
					Accepted int    `json:"accepted"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != 202 || err != nil || body.Status != "ok" || body.Accepted != n {
					errs <- fmt.Sprintf("client %d request %d: %d %s, want 202 with accepted %d", c, r, rec.Code, rec.Body, n)
					continue
				}
				mu.Lock()
				for _, e := range evs {
					sent[e.DeviceID] = e
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := map[string]stream.Event{}
	total := 0
	for _, evs := range withoutReceipt(storedEvents(t, in.rdb, in.keys, in.cfg.Shards)) {
		for _, e := range evs {
			got[e.DeviceID] = e
			total++
		}
	}
	if total != len(sent) || !reflect.DeepEqual(got, sent) {
		t.Errorf("stored %d events (%d distinct), want the %d sent, each once", total, len(got), len(sent))
	}
}

// blockingPublisher holds every Publish until release is closed and, as
// the Redis publisher does, gives up on its caller's context ending.
type blockingPublisher struct {
	started, release chan struct{}
	once             sync.Once
}

func (p *blockingPublisher) Publish(ctx context.Context, events []stream.Event) error {
	p.once.Do(func() { close(p.started) })
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A client that hangs up while its events are being written does not
// change what happens to them: the handler waits for the outcome and
// counts them as accepted once written, so pulse_events_accepted_total is
// what the streams hold (the end-to-end tests compare the two).
func TestPostMetricsClientGoneWhileWriting(t *testing.T) {
	cfg, err := config.Load(config.Ingest, config.MapEnv(map[string]string{
		"REDIS_ADDR": "127.0.0.1:1", "KEY_PREFIX": "gone", "REDIS_TIMEOUT": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := newIngestMetrics(reg)
	pub := &blockingPublisher{started: make(chan struct{}), release: make(chan struct{})}
	r := httpserver.NewRouter(httpserver.Options{Service: "ingest", Registry: reg, Log: zap.NewNop()})
	r.POST("/metrics", handlePostMetrics(pub, cfg, m, zap.NewNop()))

	ctx, hangUp := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, "/metrics",
		strings.NewReader(`[{"device_id":"d1","cpu":1,"rps":2},{"device_id":"d2","cpu":3,"rps":4}]`)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.ServeHTTP(rec, req)
	}()
	<-pub.started
	hangUp()
	select {
	case <-done:
		t.Fatalf("the handler returned %d when the client hung up, before the write's outcome", rec.Code)
	case <-time.After(50 * time.Millisecond): // still waiting, as it should
	}
	close(pub.release)
	<-done
	if rec.Code != http.StatusAccepted {
		t.Errorf("status %d, want 202 for events written", rec.Code)
	}
	if got, ok := promtext.Value(t, scrape(t, r), "pulse_events_accepted_total", nil); !ok || got != 2 {
		t.Errorf("pulse_events_accepted_total = %v (%v), want the 2 events written", got, ok)
	}
}
