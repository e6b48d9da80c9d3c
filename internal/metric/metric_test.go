package metric

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNow is the receipt time used by the tables: 2024-05-01T12:00:00Z.
var testNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	nowSec         = 1714564800.0
	testMax        = 5
	testMaxMetrics = 4
	validObj       = `{"device_id":"d1","cpu":1,"rps":2}`
)

// lim returns the limits of the tests: maxBatch metrics per body and
// testMaxMetrics named metrics per object.
func lim(maxBatch int) Limits { return Limits{Batch: maxBatch, Metrics: testMaxMetrics} }

// loc is the part of a FieldError the tables pin down.
type loc struct {
	Index int
	Field string
}

func locs(details []FieldError) []loc {
	out := make([]loc, len(details))
	for i, d := range details {
		out[i] = loc{d.Index, d.Field}
	}
	return out
}

func m(id string, cpu, rps, ts float64) Metric {
	return Metric{DeviceID: id, CPU: cpu, RPS: rps, Timestamp: ts}
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("a", 129)
	tests := []struct {
		name    string
		format  Format
		body    string
		kind    Kind
		message string
		want    []loc
	}{
		// Body shape.
		{"empty body", JSON, ``, Invalid, "empty body", []loc{{0, ""}}},
		{"whitespace body", JSON, " \t\r\n ", Invalid, "empty body", []loc{{0, ""}}},
		{"empty array", JSON, `[]`, Invalid, "empty batch", []loc{{0, ""}}},
		{"empty array with spaces", JSON, ` [ ] `, Invalid, "empty batch", []loc{{0, ""}}},
		{"empty array then garbage", JSON, `[]x`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"top-level number", JSON, `42`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"top-level string", JSON, `"x"`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"top-level null", JSON, `null`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"top-level true", JSON, `true`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"trailing garbage", JSON, validObj + `x`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"two objects", JSON, validObj + validObj, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"two objects on two lines as JSON", JSON, validObj + "\n" + validObj, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"extra bracket", JSON, `[` + validObj + `]]`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"unclosed array", JSON, `[` + validObj, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"unclosed array after comma", JSON, `[` + validObj + `,`, Invalid, "malformed JSON", []loc{{1, ""}}},
		{"trailing comma in array", JSON, `[` + validObj + `,]`, Invalid, "malformed JSON", []loc{{1, ""}}},
		{"leading comma in array", JSON, `[,` + validObj + `]`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"missing comma in array", JSON, `[` + validObj + validObj + `]`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"number element", JSON, `[` + validObj + `,42,` + validObj + `]`, Invalid, "invalid metrics", []loc{{1, ""}}},
		{"null element", JSON, `[null]`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"array element", JSON, `[` + validObj + `,[` + validObj + `]]`, Invalid, "invalid metrics", []loc{{1, ""}}},
		{"string element", JSON, `["d1"]`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"BOM", JSON, "\ufeff" + validObj, Invalid, "malformed JSON", []loc{{0, ""}}},

		// device_id.
		{"device_id missing", JSON, `{"cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id null", JSON, `{"device_id":null,"cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id number", JSON, `{"device_id":12,"cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id bool", JSON, `{"device_id":true,"cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id object", JSON, `{"device_id":{"a":"b"},"cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id array", JSON, `{"device_id":["a"],"cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id empty", JSON, `{"device_id":"","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id too long", JSON, `{"device_id":"` + long + `","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id space", JSON, `{"device_id":"dev 1","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id slash", JSON, `{"device_id":"dev/1","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id non-ASCII", JSON, `{"device_id":"dév","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id escaped space", JSON, `{"device_id":"dev\u00201","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id escaped e-acute", JSON, `{"device_id":"d\u00e9v","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id escaped newline", JSON, `{"device_id":"dev\n","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id escaped slash", JSON, `{"device_id":"dev\/1","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id escaped NUL", JSON, `{"device_id":"dev\u0000","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id surrogate pair", JSON, `{"device_id":"d\ud83d\ude00","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id lone surrogate", JSON, `{"device_id":"d\ud83d","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"device_id escapes make it too long", JSON, `{"device_id":"` + strings.Repeat(`\u0061`, 129) + `","cpu":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},

		// cpu.
		{"cpu missing", JSON, `{"device_id":"d1","rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu null", JSON, `{"device_id":"d1","cpu":null,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu string", JSON, `{"device_id":"d1","cpu":"50","rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu string NaN", JSON, `{"device_id":"d1","cpu":"NaN","rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu bool", JSON, `{"device_id":"d1","cpu":false,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu object", JSON, `{"device_id":"d1","cpu":{},"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu array", JSON, `{"device_id":"d1","cpu":[50],"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu negative", JSON, `{"device_id":"d1","cpu":-0.0001,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu above 100", JSON, `{"device_id":"d1","cpu":100.0001,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu 1e999", JSON, `{"device_id":"d1","cpu":1e999,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu -1e999", JSON, `{"device_id":"d1","cpu":-1e999,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"cpu NaN token", JSON, `{"device_id":"d1","cpu":NaN,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"cpu Infinity token", JSON, `{"device_id":"d1","cpu":Infinity,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"cpu -Infinity token", JSON, `{"device_id":"d1","cpu":-Infinity,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},

		// rps.
		{"rps missing", JSON, `{"device_id":"d1","cpu":1}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps null", JSON, `{"device_id":"d1","cpu":1,"rps":null}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps string", JSON, `{"device_id":"d1","cpu":1,"rps":"2"}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps bool", JSON, `{"device_id":"d1","cpu":1,"rps":true}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps object", JSON, `{"device_id":"d1","cpu":1,"rps":{"v":2}}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps array", JSON, `{"device_id":"d1","cpu":1,"rps":[]}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps negative", JSON, `{"device_id":"d1","cpu":1,"rps":-0.0001}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps 1e999", JSON, `{"device_id":"d1","cpu":1,"rps":1e999}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps above MaxRPS", JSON, `{"device_id":"d1","cpu":1,"rps":1000000000.0001}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps 1e308", JSON, `{"device_id":"d1","cpu":1,"rps":1e308}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"rps MaxFloat64 second", JSON, `[{"device_id":"d1","cpu":1,"rps":1},{"device_id":"d1","cpu":1,"rps":1.7976931348623157e308}]`, Invalid, "invalid metrics", []loc{{1, "rps"}}},
		{"rps NaN token", JSON, `{"device_id":"d1","cpu":1,"rps":NaN}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"rps Infinity token", JSON, `{"device_id":"d1","cpu":1,"rps":Infinity}`, Invalid, "malformed JSON", []loc{{0, ""}}},

		// timestamp.
		{"timestamp null", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":null}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp bool", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":true}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp object", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":{}}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp array", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":[1714564800]}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp bad string", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"yesterday"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp numeric string", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"1714564800"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp space separator", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01 12:00:00Z"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp no zone", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T12:00:00"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp number 301s ahead", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714565101}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp number just over 5 min", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714565100.001}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp RFC3339 just over 5 min", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T12:05:00.000000001Z"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp RFC3339 offset in future", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T14:06:00+02:00"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp far future", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1e300}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp before 2000", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":946684799.999}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp RFC3339 before 2000", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"1999-12-31T23:59:59Z"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp RFC3339 offset before 2000", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2000-01-01T00:30:00+01:00"}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp negative", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":-1}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp zero", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":0}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp 1e999", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1e999}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"timestamp milliseconds", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714564800000}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},

		// Unknown and duplicate fields.
		{"unknown field", JSON, `{"device_id":"d1","cpu":1,"rps":2,"extra":1}`, Invalid, "invalid metrics", []loc{{0, "extra"}}},
		{"case-sensitive name", JSON, `{"device_id":"d1","CPU":1,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "CPU"}, {0, "cpu"}}},
		{"unknown nested value, rest validated", JSON, `{"device_id":"d1","meta":{"a":[1,{"b":[true,null,"}"]}],"c":{}},"cpu":101,"rps":2}`, Invalid, "invalid metrics", []loc{{0, "meta"}, {0, "cpu"}}},
		{"unknown escaped name", JSON, `{"device_id":"d1","cpu":1,"rps":2,"\u0078":1}`, Invalid, "invalid metrics", []loc{{0, "x"}}},
		{"unknown empty name", JSON, `{"device_id":"d1","cpu":1,"rps":2,"":1}`, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"duplicate cpu", JSON, `{"device_id":"d1","cpu":1,"rps":2,"cpu":3}`, Invalid, "invalid metrics", []loc{{0, "cpu"}}},
		{"duplicate device_id", JSON, `{"device_id":"d1","cpu":1,"device_id":"d2","rps":2}`, Invalid, "invalid metrics", []loc{{0, "device_id"}}},
		{"duplicate timestamp", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714564800,"timestamp":1714564800}`, Invalid, "invalid metrics", []loc{{0, "timestamp"}}},
		{"duplicate via escape", JSON, `{"device_id":"d1","cpu":1,"rps":2,"\u0072ps":2}`, Invalid, "invalid metrics", []loc{{0, "rps"}}},
		{"duplicate unknown", JSON, `{"device_id":"d1","cpu":1,"rps":2,"x":1,"x":2}`, Invalid, "invalid metrics", []loc{{0, "x"}, {0, "x"}}},

		// All errors of an object and of a batch are reported.
		{"all errors of an object", JSON, `{"device_id":"","cpu":101,"rps":-1,"timestamp":"x"}`, Invalid, "invalid metrics",
			[]loc{{0, "device_id"}, {0, "cpu"}, {0, "rps"}, {0, "timestamp"}}},
		{"all missing", JSON, `{}`, Invalid, "invalid metrics", []loc{{0, "device_id"}, {0, "cpu"}, {0, "rps"}}},
		{"errors across a batch", JSON, `[` + validObj + `,{"device_id":"d2","cpu":-1,"rps":2},` + validObj + `,{"device_id":"d4","cpu":1},{"x":1,"device_id":"d5","cpu":1,"rps":1}]`, Invalid, "invalid metrics",
			[]loc{{1, "cpu"}, {3, "rps"}, {4, "x"}}},

		// Named metrics (testMaxMetrics = 4).
		{"metrics array", JSON, `{"device_id":"d1","metrics":[1]}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics null", JSON, `{"device_id":"d1","cpu":1,"rps":2,"metrics":null}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics string", JSON, `{"device_id":"d1","metrics":"temperature=1"}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics number", JSON, `{"device_id":"d1","metrics":1}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics empty without cpu and rps", JSON, `{"device_id":"d1","metrics":{}}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics empty without rps", JSON, `{"device_id":"d1","cpu":1,"metrics":{ }}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics empty without cpu", JSON, `{"device_id":"d1","metrics":{},"rps":2}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics duplicate field", JSON, `{"device_id":"d1","metrics":{"a":1},"metrics":{"b":2}}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"metrics duplicate field after non-object", JSON, `{"device_id":"d1","metrics":1,"metrics":{"b":2}}`, Invalid, "invalid metrics", []loc{{0, "metrics"}, {0, "metrics"}}},
		{"metric name upper case", JSON, `{"device_id":"d1","metrics":{"Temp":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.Temp"}}},
		{"metric name leading digit", JSON, `{"device_id":"d1","metrics":{"1a":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.1a"}}},
		{"metric name leading underscore", JSON, `{"device_id":"d1","metrics":{"_a":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics._a"}}},
		{"metric name hyphen", JSON, `{"device_id":"d1","metrics":{"battery-v":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.battery-v"}}},
		{"metric name dot", JSON, `{"device_id":"d1","metrics":{"a.b":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a.b"}}},
		{"metric name empty", JSON, `{"device_id":"d1","metrics":{"":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics."}}},
		{"metric name 65 characters", JSON, `{"device_id":"d1","metrics":{"` + strings.Repeat("a", 65) + `":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics." + strings.Repeat("a", 65)}}},
		{"metric name long is shortened", JSON, `{"device_id":"d1","metrics":{"` + strings.Repeat("é", 200) + `":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics." + strings.Repeat("é", 128) + "..."}}},
		{"metric name escaped space", JSON, `{"device_id":"d1","metrics":{"a\u0020b":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a b"}}},
		{"metric name non-ASCII", JSON, `{"device_id":"d1","metrics":{"température":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.température"}}},
		{"metric name cpu", JSON, `{"device_id":"d1","metrics":{"cpu":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.cpu"}}},
		{"metric name rps beside rps", JSON, `{"device_id":"d1","cpu":1,"rps":2,"metrics":{"rps":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.rps"}}},
		{"metric name escaped cpu", JSON, `{"device_id":"d1","metrics":{"a":1,"\u0063pu":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.cpu"}}},
		{"metric duplicate", JSON, `{"device_id":"d1","metrics":{"a":1,"b":2,"a":3}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric duplicate via escape", JSON, `{"device_id":"d1","metrics":{"ab":1,"\u0061b":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.ab"}}},
		{"metric duplicate of a bad value", JSON, `{"device_id":"d1","metrics":{"a":"1","a":1}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}, {0, "metrics.a"}}},
		{"metric string value", JSON, `{"device_id":"d1","metrics":{"a":"21.5"}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric null value", JSON, `{"device_id":"d1","metrics":{"a":null}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric bool value", JSON, `{"device_id":"d1","metrics":{"a":true}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric object value", JSON, `{"device_id":"d1","metrics":{"a":{"v":[1]}}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric array value", JSON, `{"device_id":"d1","metrics":{"a":[1]}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric 1e999", JSON, `{"device_id":"d1","metrics":{"a":1e999}}`, Invalid, "invalid metrics", []loc{{0, "metrics.a"}}},
		{"metric -1e999", JSON, `{"device_id":"d1","metrics":{"a":1,"b":-1e999}}`, Invalid, "invalid metrics", []loc{{0, "metrics.b"}}},
		{"metric NaN token", JSON, `{"device_id":"d1","metrics":{"a":NaN}}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"metric Infinity token", JSON, `{"device_id":"d1","metrics":{"a":Infinity}}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"metrics trailing comma", JSON, `{"device_id":"d1","metrics":{"a":1,}}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"metrics unclosed", JSON, `{"device_id":"d1","metrics":{"a":1`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"metrics missing colon", JSON, `{"device_id":"d1","metrics":{"a" 1}}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"metrics too deep", JSON, `{"device_id":"d1","metrics":{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"too many metrics", JSON, `{"device_id":"d1","metrics":{"a":1,"b":2,"c":3,"d":4,"e":5}}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"too many metrics, the rest only parsed", JSON, `{"device_id":"d1","metrics":{"a":1,"b":2,"c":3,"d":4,"E":"x","a":[]}}`, Invalid, "invalid metrics", []loc{{0, "metrics"}}},
		{"too many metrics and errors before the limit", JSON, `{"device_id":"d1","metrics":{"a":1,"B":2,"c":"3","d":4,"e":5}}`, Invalid, "invalid metrics", []loc{{0, "metrics.B"}, {0, "metrics.c"}, {0, "metrics"}}},
		{"too many metrics, malformed past the limit", JSON, `{"device_id":"d1","metrics":{"a":1,"b":2,"c":3,"d":4,"e":01}}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"metrics errors and other fields", JSON, `{"device_id":"","metrics":{"a":"x"},"cpu":101}`, Invalid, "invalid metrics", []loc{{0, "device_id"}, {0, "metrics.a"}, {0, "cpu"}}},
		{"metrics in a batch", JSON, `[` + validObj + `,{"device_id":"d2","metrics":{"ok":1,"Bad":2}}]`, Invalid, "invalid metrics", []loc{{1, "metrics.Bad"}}},
		{"metrics in ndjson", NDJSON, validObj + "\n" + `{"device_id":"d2","metrics":{}}` + "\n", Invalid, "invalid metrics", []loc{{1, "metrics"}}},

		// Tags.
		{"tags without metrics keep cpu and rps required", JSON, `{"device_id":"d1","tags":{"site":"berlin"}}`, Invalid, "invalid metrics", []loc{{0, "cpu"}, {0, "rps"}}},
		{"tags array", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":["site"]}`, Invalid, "invalid metrics", []loc{{0, "tags"}}},
		{"tags null", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":null}`, Invalid, "invalid metrics", []loc{{0, "tags"}}},
		{"tags string", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":"site=berlin"}`, Invalid, "invalid metrics", []loc{{0, "tags"}}},
		{"tags duplicate field", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{},"tags":{}}`, Invalid, "invalid metrics", []loc{{0, "tags"}}},
		{"too many tags", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}}`, Invalid, "invalid metrics", []loc{{0, "tags"}}},
		{"too many tags, the rest only parsed", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","I":1,"a":"x"}}`, Invalid, "invalid metrics", []loc{{0, "tags"}}},
		{"tag key upper case", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"Site":"berlin"}}`, Invalid, "invalid metrics", []loc{{0, "tags.Site"}}},
		{"tag key empty", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"":"berlin"}}`, Invalid, "invalid metrics", []loc{{0, "tags."}}},
		{"tag key 33 characters", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"` + strings.Repeat("k", 33) + `":"v"}}`, Invalid, "invalid metrics", []loc{{0, "tags." + strings.Repeat("k", 33)}}},
		{"tag key long is shortened", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"` + strings.Repeat("k", 300) + `":"v"}}`, Invalid, "invalid metrics", []loc{{0, "tags." + strings.Repeat("k", 256) + "..."}}},
		{"tag duplicate", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"a","site":"b"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag duplicate of a bad value", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":1,"\u0073ite":"b"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}, {0, "tags.site"}}},
		{"tag value number", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":1}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value null", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":null}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value object", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":{}}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value empty", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":""}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value 65 characters", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"` + strings.Repeat("v", 65) + `"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value space", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"new york"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value comma", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"a,b"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value equals", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"a=b"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value escaped newline", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"a\nb"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag value escapes make it too long", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"` + strings.Repeat(`\u0061`, 65) + `"}}`, Invalid, "invalid metrics", []loc{{0, "tags.site"}}},
		{"tag errors with metric errors", JSON, `{"device_id":"d1","tags":{"K":"v","k":""},"metrics":{"t":"1"}}`, Invalid, "invalid metrics", []loc{{0, "tags.K"}, {0, "tags.k"}, {0, "metrics.t"}}},

		// JSON grammar.
		{"leading zero", JSON, `{"device_id":"d1","cpu":01,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"negative leading zero", JSON, `{"device_id":"d1","cpu":1,"rps":-01}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"plus sign", JSON, `{"device_id":"d1","cpu":+1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"leading dot", JSON, `{"device_id":"d1","cpu":.5,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"trailing dot", JSON, `{"device_id":"d1","cpu":1.,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"hex number", JSON, `{"device_id":"d1","cpu":0x1A,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"bare minus", JSON, `{"device_id":"d1","cpu":-,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"empty exponent", JSON, `{"device_id":"d1","cpu":1e,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"signed empty exponent", JSON, `{"device_id":"d1","cpu":1e+,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"underscore digits", JSON, `{"device_id":"d1","cpu":1_0,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"missing value", JSON, `{"device_id":"d1","cpu":,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"missing colon", JSON, `{"device_id" "d1","cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"missing comma", JSON, `{"device_id":"d1" "cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"trailing comma in object", JSON, `{"device_id":"d1","cpu":1,"rps":2,}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"unquoted key", JSON, `{device_id:"d1","cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"single quotes", JSON, `{'device_id':'d1','cpu':1,'rps':2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"truncated object", JSON, `{"device_id":"d1","cpu":1`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"truncated after colon", JSON, `{"device_id":`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"unterminated string", JSON, `{"device_id":"d1`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"invalid escape", JSON, `{"device_id":"d\x41","cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"short unicode escape", JSON, `{"device_id":"d\u41","cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"bad hex in escape", JSON, `{"device_id":"d\u00G1","cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"raw control character", JSON, "{\"device_id\":\"d\t1\",\"cpu\":1,\"rps\":2}", Invalid, "malformed JSON", []loc{{0, ""}}},
		{"invalid UTF-8 in value", JSON, "{\"device_id\":\"d\xff\",\"cpu\":1,\"rps\":2}", Invalid, "malformed JSON", []loc{{0, ""}}},
		{"invalid UTF-8 in key", JSON, "{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2,\"\xc3\":1}", Invalid, "malformed JSON", []loc{{0, ""}}},
		{"UTF-8 encoded surrogate", JSON, "{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2,\"x\":\"\xed\xa0\x80\"}", Invalid, "malformed JSON", []loc{{0, ""}}},
		{"bad literal", JSON, `{"device_id":"d1","cpu":1,"rps":2,"x":nul}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"capitalised literal", JSON, `{"device_id":"d1","cpu":1,"rps":2,"x":True}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"too deep", JSON, `{"device_id":"d1","cpu":1,"rps":2,"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"too deep in array element", JSON, `[` + validObj + `,` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `]`, Invalid, "malformed JSON", []loc{{1, ""}}},
		{"malformed element index", JSON, `[` + validObj + `,` + validObj + `,{"device_id":"d1","cpu":01}]`, Invalid, "malformed JSON", []loc{{2, ""}}},
		{"malformed beats validation", JSON, `[{"cpu":-1},{"cpu":NaN}]`, Invalid, "malformed JSON", []loc{{1, ""}}},

		// Batch size (testMax = 5).
		{"too many items", JSON, `[` + strings.Repeat(validObj+`,`, testMax) + validObj + `]`, TooLarge, "batch too large", []loc{{testMax, ""}}},
		{"too large beats validation", JSON, `[` + strings.Repeat(`{},`, testMax) + `{}]`, TooLarge, "batch too large", []loc{{testMax, ""}}},
		{"malformed beats too large", JSON, `[` + strings.Repeat(validObj+`,`, testMax+1) + `x]`, Invalid, "malformed JSON", []loc{{testMax + 1, ""}}},
		{"malformed after too large", JSON, `[` + strings.Repeat(validObj+`,`, testMax) + validObj + `]x`, Invalid, "malformed JSON", []loc{{0, ""}}},

		// NDJSON.
		{"ndjson empty", NDJSON, ``, Invalid, "empty body", []loc{{0, ""}}},
		{"ndjson blank lines only", NDJSON, "\n\r\n \t \n\n", Invalid, "empty body", []loc{{0, ""}}},
		{"ndjson invalid line index skips blanks", NDJSON, validObj + "\n\n\r\n" + validObj + "\n" + `{"device_id":"d3","cpu":1,"rps":-2}` + "\n", Invalid, "invalid metrics", []loc{{2, "rps"}}},
		{"ndjson malformed line", NDJSON, validObj + "\n\n" + `{"device_id":"d2",` + "\n", Invalid, "malformed JSON", []loc{{1, ""}}},
		{"ndjson object across lines", NDJSON, `{"device_id":"d1",` + "\n" + `"cpu":1,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"ndjson two objects on a line", NDJSON, validObj + validObj + "\n", Invalid, "malformed JSON", []loc{{0, ""}}},
		{"ndjson array line", NDJSON, validObj + "\n[" + validObj + "]\n", Invalid, "invalid metrics", []loc{{1, ""}}},
		{"ndjson number line", NDJSON, "42\n" + validObj, Invalid, "invalid metrics", []loc{{0, ""}}},
		{"ndjson garbage line", NDJSON, validObj + "\nhello\n", Invalid, "malformed JSON", []loc{{1, ""}}},
		{"ndjson NaN", NDJSON, `{"device_id":"d1","cpu":NaN,"rps":2}`, Invalid, "malformed JSON", []loc{{0, ""}}},
		{"ndjson unknown and duplicate", NDJSON, `{"device_id":"d1","cpu":1,"rps":2,"rps":3}` + "\r\n" + `{"device_id":"d1","cpu":1,"rps":2,"Rps":3}`, Invalid, "invalid metrics", []loc{{0, "rps"}, {1, "Rps"}}},
		{"ndjson too many", NDJSON, strings.Repeat(validObj+"\n\n", testMax+1), TooLarge, "batch too large", []loc{{testMax, ""}}},
		{"ndjson malformed beats too large", NDJSON, strings.Repeat(validObj+"\n", testMax+1) + "{", Invalid, "malformed JSON", []loc{{testMax + 1, ""}}},
		{"ndjson raw CR inside string", NDJSON, "{\"device_id\":\"d\r1\",\"cpu\":1,\"rps\":2}", Invalid, "malformed JSON", []loc{{0, ""}}},
		{"ndjson too deep", NDJSON, strings.Repeat("[", 65) + strings.Repeat("]", 65), Invalid, "malformed JSON", []loc{{0, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, _, err := Decode([]byte(tt.body), tt.format, testNow, lim(testMax), nil)
			if ms != nil {
				t.Errorf("metrics = %v, want nil", ms)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Kind != tt.kind || e.Message != tt.message {
				t.Errorf("Kind, Message = %v, %q; want %v, %q", e.Kind, e.Message, tt.kind, tt.message)
			}
			if got := locs(e.Details); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("details = %+v\nwant (index, field) %+v", e.Details, tt.want)
			}
			for _, d := range e.Details {
				if d.Reason == "" {
					t.Errorf("detail %+v has no reason", d)
				}
			}
		})
	}
}

// TestDecodeReasons pins the reason text of representative errors.
func TestDecodeReasons(t *testing.T) {
	tests := []struct {
		format Format
		body   string
		reason string
	}{
		{JSON, `{"cpu":1,"rps":2}`, "required"},
		{JSON, `{"device_id":null,"cpu":1,"rps":2}`, "must be a string"},
		{JSON, `{"device_id":7,"cpu":1,"rps":2}`, "must be a string"},
		{JSON, `{"device_id":"a b","cpu":1,"rps":2}`, "must be 1-128 characters of [A-Za-z0-9._:-]"},
		{JSON, `{"device_id":"d1","cpu":null,"rps":2}`, "must be a number"},
		{JSON, `{"device_id":"d1","cpu":"NaN","rps":2}`, "must be a number"},
		{JSON, `{"device_id":"d1","cpu":1e999,"rps":2}`, "out of range"},
		{JSON, `{"device_id":"d1","cpu":100.5,"rps":2}`, "must be between 0 and 100"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":-1}`, "must be >= 0"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":null}`, "must be a number of Unix seconds or an RFC 3339 string"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"x"}`, "must be a valid RFC 3339 timestamp"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714565101}`, "must not be more than 5 minutes in the future"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1}`, "must not be before 2000-01-01T00:00:00Z"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"x":1}`, "unknown field"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"cpu":1}`, "duplicate field"},
		{JSON, `[1]`, "must be a JSON object"},
		{JSON, `{"device_id":"d1","metrics":[]}`, "must be a JSON object"},
		{JSON, `{"device_id":"d1","metrics":{}}`, "must hold a metric when cpu or rps is absent"},
		{JSON, `{"device_id":"d1","metrics":{"A":1}}`, "must match ^[a-z][a-z0-9_]{0,63}$"},
		{JSON, `{"device_id":"d1","metrics":{"cpu":1}}`, "cpu and rps are top-level fields, not names in metrics"},
		{JSON, `{"device_id":"d1","metrics":{"a":1,"a":1}}`, "duplicate field"},
		{JSON, `{"device_id":"d1","metrics":{"a":"1"}}`, "must be a finite number"},
		{JSON, `{"device_id":"d1","metrics":{"a":1e400}}`, "must be a finite number"},
		{JSON, `{"device_id":"d1","metrics":{"a":1,"b":2,"c":3,"d":4,"e":5}}`, "more named metrics than MAX_METRICS"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":1}`, "must be a JSON object"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"A":"b"}}`, "must match ^[a-z][a-z0-9_]{0,31}$"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"b c"}}`, "must be 1-64 characters of [A-Za-z0-9._:-]"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":true}}`, "must be a string"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}}`, "more than 8 tags"},
		{JSON, `1`, "body must be a JSON object or an array of objects"},
		{JSON, `{"device_id":"d1","cpu":NaN}`, "invalid character 'N' at offset 24"},
		{JSON, `{"device_id":"d1","cpu":1,"rps":2} x`, "unexpected data after top-level value at offset 35"},
		{JSON, `{"device_id":"d1"`, "unexpected end of input at offset 17"},
		{JSON, "{\"device_id\":\"\xff\"}", "invalid UTF-8 in string at offset 14"},
		{JSON, `{"device_id":"\q"}`, `invalid escape "\\q" at offset 14`},
		{JSON, `[` + validObj + `,` + validObj + `,` + validObj + `,` + validObj + `,` + validObj + `,` + validObj + `]`, "more than 5 metrics"},
		{NDJSON, validObj + "\n" + `{"device_id":"d1",` + "\n" + validObj, "unexpected end of line at offset 53"},
		{NDJSON, validObj + "\n" + `{"device_id":"d1` + "\n", "unterminated string at offset 48"},
		{NDJSON, validObj + "\n" + `{"device_id":"d1` + "\r\n", "control character in string at offset 51"},
		{NDJSON, validObj + "\r\n\r\n" + validObj + " x\n", "unexpected data after top-level value at offset 73"},
	}
	for _, tt := range tests {
		_, _, err := Decode([]byte(tt.body), tt.format, testNow, lim(testMax), nil)
		var e *Error
		if !errors.As(err, &e) || len(e.Details) != 1 || e.Details[0].Reason != tt.reason {
			t.Errorf("Decode(%q, %v) = %v; want one detail with reason %q", tt.body, tt.format, err, tt.reason)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	id128 := strings.Repeat("x", 128)
	name64 := "n" + strings.Repeat("_9", 31) + "z"
	key32 := "k" + strings.Repeat("a0", 15) + "_"
	value64 := strings.Repeat("Az9._:-", 9) + "x"
	tests := []struct {
		name   string
		format Format
		body   string
		single bool
		want   []Metric
	}{
		{"single object", JSON, `{"device_id":"d1","cpu":50.5,"rps":100,"timestamp":1714564000}`, true,
			[]Metric{m("d1", 50.5, 100, 1714564000)}},
		{"README example", JSON, `{"timestamp":1234567890,"cpu":50.5,"rps":100.0,"device_id":"device_1"}`, true,
			[]Metric{m("device_1", 50.5, 100, 1234567890)}},
		{"array keeps order", JSON, `[{"device_id":"a","cpu":1,"rps":1},{"device_id":"b","cpu":2,"rps":2},{"device_id":"c","cpu":3,"rps":3}]`, false,
			[]Metric{m("a", 1, 1, nowSec), m("b", 2, 2, nowSec), m("c", 3, 3, nowSec)}},
		{"array of one", JSON, `[` + validObj + `]`, false, []Metric{m("d1", 1, 2, nowSec)}},
		{"exactly maxBatch items", JSON, `[` + strings.Repeat(validObj+`,`, testMax-1) + validObj + `]`, false,
			[]Metric{m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec)}},
		{"whitespace everywhere", JSON, " \r\n\t[ \n{ \"device_id\" :\t\"d1\" , \"cpu\" : 1 ,\r\n\"rps\": 2 } ,{\"device_id\":\"d2\",\"cpu\":3,\"rps\":4}\n] \n", false,
			[]Metric{m("d1", 1, 2, nowSec), m("d2", 3, 4, nowSec)}},
		{"absent timestamp is now", JSON, validObj, true, []Metric{m("d1", 1, 2, nowSec)}},
		{"timestamp integer", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714564000}`, true, []Metric{m("d1", 1, 2, 1714564000)}},
		{"timestamp fraction", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714564000.125}`, true, []Metric{m("d1", 1, 2, 1714564000.125)}},
		{"timestamp exponent", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1.7145648E9}`, true, []Metric{m("d1", 1, 2, 1714564800)}},
		{"timestamp RFC3339", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00Z"}`, true, []Metric{m("d1", 1, 2, nowSec-3600)}},
		{"timestamp RFC3339 nano", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00.5Z"}`, true, []Metric{m("d1", 1, 2, nowSec-3599.5)}},
		{"timestamp RFC3339 with offset", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T13:00:00+02:00"}`, true, []Metric{m("d1", 1, 2, nowSec-3600)}},
		{"timestamp RFC3339 negative offset", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T06:30:00-05:30"}`, true, []Metric{m("d1", 1, 2, nowSec)}},
		{"timestamp RFC3339 escaped", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00\u005a"}`, true, []Metric{m("d1", 1, 2, nowSec-3600)}},
		{"timestamp number exactly 5 min ahead", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714565100}`, true, []Metric{m("d1", 1, 2, nowSec+300)}},
		{"timestamp RFC3339 exactly 5 min ahead", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T12:05:00Z"}`, true, []Metric{m("d1", 1, 2, nowSec+300)}},
		{"timestamp offset exactly 5 min ahead", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T14:05:00+02:00"}`, true, []Metric{m("d1", 1, 2, nowSec+300)}},
		{"timestamp 2000-01-01 number", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":946684800}`, true, []Metric{m("d1", 1, 2, 946684800)}},
		{"timestamp 2000-01-01 RFC3339", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2000-01-01T00:00:00Z"}`, true, []Metric{m("d1", 1, 2, 946684800)}},
		{"cpu and rps bounds", JSON, `{"device_id":"d1","cpu":100,"rps":0}`, true, []Metric{m("d1", 100, 0, nowSec)}},
		{"cpu 100.0 and 1e2", JSON, `[{"device_id":"d1","cpu":100.0,"rps":0},{"device_id":"d1","cpu":1e2,"rps":1E+2}]`, false,
			[]Metric{m("d1", 100, 0, nowSec), m("d1", 100, 100, nowSec)}},
		{"negative zero becomes zero", JSON, `{"device_id":"d1","cpu":-0,"rps":-0.0}`, true, []Metric{m("d1", 0, 0, nowSec)}},
		{"tiny rps and MaxRPS", JSON, `[{"device_id":"d1","cpu":0,"rps":1e-400},{"device_id":"d1","cpu":0,"rps":1e9}]`, false,
			[]Metric{m("d1", 0, 0, nowSec), m("d1", 0, MaxRPS, nowSec)}},
		{"device_id all classes", JSON, `{"device_id":"AZaz09._:-","cpu":1,"rps":2}`, true, []Metric{m("AZaz09._:-", 1, 2, nowSec)}},
		{"device_id 128 chars", JSON, `{"device_id":"` + id128 + `","cpu":1,"rps":2}`, true, []Metric{m(id128, 1, 2, nowSec)}},
		{"device_id escapes decoded", JSON, `{"device_id":"\u0041-\u006a\u004B","cpu":1,"rps":2}`, true, []Metric{m("A-jK", 1, 2, nowSec)}},
		{"field name escapes decoded", JSON, `{"\u0064evice_id":"d1","c\u0070u":1,"rps":2,"times\u0074amp":1714564000}`, true, []Metric{m("d1", 1, 2, 1714564000)}},
		{"field order free", JSON, `{"rps":2,"timestamp":1714564000,"cpu":1,"device_id":"d1"}`, true, []Metric{m("d1", 1, 2, 1714564000)}},
		{"named metrics without cpu and rps", JSON, `{"device_id":"d1","metrics":{"temperature":21.5,"battery_v":3.71}}`, true,
			[]Metric{{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: nowSec,
				Metrics: []Named{{"temperature", 21.5}, {"battery_v", 3.71}}}}},
		{"named metrics with cpu only", JSON, `{"metrics":{"t":1},"device_id":"d1","cpu":7}`, true,
			[]Metric{{DeviceID: "d1", CPU: 7, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"t", 1}}}}},
		{"named metrics with rps only", JSON, `{"device_id":"d1","rps":7,"metrics":{"t":1}}`, true,
			[]Metric{{DeviceID: "d1", RPS: 7, NoCPU: true, Timestamp: nowSec, Metrics: []Named{{"t", 1}}}}},
		{"named metrics, cpu, rps and tags", JSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714564000,"metrics":{"a":1},"tags":{"site":"berlin","model":"x1"}}`, true,
			[]Metric{{DeviceID: "d1", CPU: 1, RPS: 2, Timestamp: 1714564000, Metrics: []Named{{"a", 1}},
				Tags: []Tag{{"site", "berlin"}, {"model", "x1"}}}}},
		{"empty metrics beside cpu and rps", JSON, `{"device_id":"d1","cpu":1,"rps":2,"metrics":{}}`, true, []Metric{m("d1", 1, 2, nowSec)}},
		{"empty tags are no tags", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{ }}`, true, []Metric{m("d1", 1, 2, nowSec)}},
		{"tags on the original shape", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"site":"AZaz09._:-"}}`, true,
			[]Metric{{DeviceID: "d1", CPU: 1, RPS: 2, Timestamp: nowSec, Tags: []Tag{{"site", "AZaz09._:-"}}}}},
		{"exactly MAX_METRICS metrics", JSON, `{"device_id":"d1","metrics":{"a":1,"b":2,"c":3,"d":4}}`, true,
			[]Metric{{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}}}}},
		{"exactly 8 tags", JSON, `{"device_id":"d1","cpu":1,"rps":2,"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8"}}`, true,
			[]Metric{{DeviceID: "d1", CPU: 1, RPS: 2, Timestamp: nowSec,
				Tags: []Tag{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}, {"f", "6"}, {"g", "7"}, {"h", "8"}}}}},
		{"longest names and values", JSON, `{"device_id":"d1","metrics":{"` + name64 + `":1},"tags":{"` + key32 + `":"` + value64 + `"}}`, true,
			[]Metric{{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{name64, 1}}, Tags: []Tag{{key32, value64}}}}},
		{"any finite metric value", JSON, `{"device_id":"d1","metrics":{"a":-1.7976931348623157e308,"b":1e-400,"c":-0,"d":123456789012345678901234567890}}`, true,
			[]Metric{{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: nowSec,
				Metrics: []Named{{"a", -math.MaxFloat64}, {"b", 0}, {"c", 0}, {"d", 1.2345678901234568e29}}}}},
		{"escaped names, keys and values", JSON, `{"device_id":"d1","m\u0065trics":{"\u0074emp":1},"tags":{"\u0073ite":"b\u0065rlin"}}`, true,
			[]Metric{{DeviceID: "d1", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"temp", 1}}, Tags: []Tag{{"site", "berlin"}}}}},
		{"metrics of a batch stay apart", JSON, `[{"device_id":"a","metrics":{"x":1,"y":2}},{"device_id":"b","cpu":1,"rps":2},{"device_id":"c","metrics":{"x":3},"tags":{"k":"v"}}]`, false,
			[]Metric{
				{DeviceID: "a", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"x", 1}, {"y", 2}}},
				m("b", 1, 2, nowSec),
				{DeviceID: "c", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"x", 3}}, Tags: []Tag{{"k", "v"}}},
			}},
		{"same metric name in two objects", NDJSON, `{"device_id":"a","metrics":{"x":1}}` + "\n" + `{"device_id":"a","metrics":{"x":2}}`, false,
			[]Metric{
				{DeviceID: "a", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"x", 1}}},
				{DeviceID: "a", NoCPU: true, NoRPS: true, Timestamp: nowSec, Metrics: []Named{{"x", 2}}},
			}},
		{"ndjson", NDJSON, validObj + "\n" + `{"device_id":"d2","cpu":3,"rps":4}`, false,
			[]Metric{m("d1", 1, 2, nowSec), m("d2", 3, 4, nowSec)}},
		{"ndjson blank lines and CRLF", NDJSON, "\r\n" + validObj + "\r\n\r\n  \t\r\n" + `{"device_id":"d2","cpu":3,"rps":4}` + "\r\n\n", false,
			[]Metric{m("d1", 1, 2, nowSec), m("d2", 3, 4, nowSec)}},
		{"ndjson single line is not single", NDJSON, validObj, false, []Metric{m("d1", 1, 2, nowSec)}},
		{"ndjson exactly maxBatch", NDJSON, strings.Repeat(validObj+"\n", testMax), false,
			[]Metric{m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec), m("d1", 1, 2, nowSec)}},
		{"ndjson timestamps", NDJSON, `{"device_id":"d1","cpu":1,"rps":2,"timestamp":1714564000}` + "\n" + `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T11:00:00Z"}`, false,
			[]Metric{m("d1", 1, 2, 1714564000), m("d1", 1, 2, nowSec-3600)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, single, err := Decode([]byte(tt.body), tt.format, testNow, lim(testMax), nil)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if single != tt.single {
				t.Errorf("single = %v, want %v", single, tt.single)
			}
			if !reflect.DeepEqual(ms, tt.want) {
				t.Errorf("metrics =\n%v\nwant\n%v", ms, tt.want)
			}
			for _, x := range ms {
				if math.Signbit(x.CPU) || math.Signbit(x.RPS) {
					t.Errorf("negative zero in %+v", x)
				}
			}
		})
	}
}

func TestDecodeNowSubSecond(t *testing.T) {
	now := time.Unix(1714564800, 250_000_000)
	ms, _, err := Decode([]byte(validObj), JSON, now, lim(1), nil)
	if err != nil || len(ms) != 1 || ms[0].Timestamp != 1714564800.25 {
		t.Fatalf("Decode = %v, %v; want timestamp 1714564800.25", ms, err)
	}
	// The 5-minute limit follows now to the nanosecond.
	body := `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T12:05:00.25Z"}`
	if _, _, err := Decode([]byte(body), JSON, now, lim(1), nil); err != nil {
		t.Errorf("timestamp exactly now+5m rejected: %v", err)
	}
	body = `{"device_id":"d1","cpu":1,"rps":2,"timestamp":"2024-05-01T12:05:00.250000001Z"}`
	if _, _, err := Decode([]byte(body), JSON, now, lim(1), nil); err == nil {
		t.Errorf("timestamp now+5m+1ns accepted")
	}
}

func TestDecodeSingleFlag(t *testing.T) {
	tests := []struct {
		body   string
		format Format
		single bool
	}{
		{validObj, JSON, true},
		{`{"cpu":-1}`, JSON, true},
		{`[` + validObj + `]`, JSON, false},
		{validObj, NDJSON, false},
		{`42`, JSON, false},
	}
	for _, tt := range tests {
		if _, single, _ := Decode([]byte(tt.body), tt.format, testNow, lim(testMax), nil); single != tt.single {
			t.Errorf("Decode(%q, %v): single = %v, want %v", tt.body, tt.format, single, tt.single)
		}
	}
}

func TestDecodeMaxBatchBelowOne(t *testing.T) {
	tests := []struct {
		body     string
		format   Format
		maxBatch int
	}{
		{validObj, JSON, 0},
		{`[` + validObj + `]`, JSON, 0},
		{validObj, NDJSON, 0},
		{validObj, JSON, -1},
	}
	for _, tt := range tests {
		_, _, err := Decode([]byte(tt.body), tt.format, testNow, lim(tt.maxBatch), nil)
		var e *Error
		if !errors.As(err, &e) || e.Kind != TooLarge {
			t.Errorf("Decode(%q, maxBatch %d) = %v, want TooLarge", tt.body, tt.maxBatch, err)
		}
	}
}

func TestDecodeMaxMetricsBelowOne(t *testing.T) {
	for _, maxMetrics := range []int{0, -1} {
		limits := Limits{Batch: 1, Metrics: maxMetrics}
		_, _, err := Decode([]byte(`{"device_id":"d1","metrics":{"a":1}}`), JSON, testNow, limits, nil)
		var e *Error
		if !errors.As(err, &e) || !reflect.DeepEqual(e.Details, []FieldError{{0, "metrics", ReasonTooManyMetrics}}) {
			t.Errorf("maxMetrics %d: err = %v, want too many metrics", maxMetrics, err)
		}
		// An empty "metrics" beside cpu and rps holds none: still fine.
		if _, _, err := Decode([]byte(`{"device_id":"d1","cpu":1,"rps":2,"metrics":{}}`), JSON, testNow, limits, nil); err != nil {
			t.Errorf("maxMetrics %d: empty metrics rejected: %v", maxMetrics, err)
		}
	}
}

func TestDecodeUnsupportedFormat(t *testing.T) {
	_, _, err := Decode([]byte(validObj), Format(7), testNow, lim(testMax), nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind != Invalid {
		t.Fatalf("err = %v, want Invalid *Error", err)
	}
}

func TestDecodeDetailsCapped(t *testing.T) {
	body := "[" + strings.Repeat(`{"cpu":-1,"rps":-1},`, 99) + `{"cpu":-1,"rps":-1}]`
	_, _, err := Decode([]byte(body), JSON, testNow, lim(1000), nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	if len(e.Details) != MaxDetails {
		t.Fatalf("len(Details) = %d, want %d", len(e.Details), MaxDetails)
	}
	want := []loc{{0, "cpu"}, {0, "rps"}, {0, "device_id"}, {1, "cpu"}}
	if got := locs(e.Details[:4]); !reflect.DeepEqual(got, want) {
		t.Errorf("first details = %v, want %v", got, want)
	}
	if got, want := e.Details[99], (FieldError{33, "cpu", ReasonCPURange}); got != want {
		t.Errorf("last detail = %+v, want %+v", got, want)
	}
}

func TestDecodeLongUnknownFieldShortened(t *testing.T) {
	name := strings.Repeat("é", 200) // 400 bytes
	body := `{"device_id":"d1","cpu":1,"rps":2,"` + name + `":1}`
	_, _, err := Decode([]byte(body), JSON, testNow, lim(testMax), nil)
	var e *Error
	if !errors.As(err, &e) || len(e.Details) != 1 {
		t.Fatalf("err = %v", err)
	}
	if want := strings.Repeat("é", 128) + "..."; e.Details[0].Field != want {
		t.Errorf("Field = %q, want %q", e.Details[0].Field, want)
	}
}

func TestDecodeReusesDst(t *testing.T) {
	dst := make([]Metric, 3, 8)
	dst[0] = m("old", 9, 9, 9)
	ms, _, err := Decode([]byte(`[`+validObj+`,`+validObj+`]`), JSON, testNow, lim(testMax), dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || &ms[0] != &dst[0] || !reflect.DeepEqual(ms[0], m("d1", 1, 2, nowSec)) {
		t.Errorf("ms = %v (cap %d), want 2 metrics in dst's array", ms, cap(ms))
	}
}

func TestDecodeAllocations(t *testing.T) {
	single := []byte(`{"device_id":"device_1","cpu":50.5,"rps":100.0,"timestamp":"2024-05-01T11:59:00.123Z"}`)
	batch := []byte(batchBody(1000))
	dst := make([]Metric, 0, 1000)
	tests := []struct {
		name   string
		body   []byte
		format Format
		allocs float64
	}{
		{"single", single, JSON, 1},
		{"batch 1000", batch, JSON, 1000},
		{"ndjson 1000", []byte(ndjsonBody(1000)), NDJSON, 1000},
		// The device ID, names, tag keys and values (7), and the backing
		// arrays of Metrics and Tags (2).
		{"named metrics and tags", []byte(`{"device_id":"d1","metrics":{"temperature":21.5,"battery_v":3.71},"tags":{"site":"berlin","model":"x1"}}`), JSON, 9},
	}
	for _, tt := range tests {
		got := testing.AllocsPerRun(20, func() {
			if _, _, err := Decode(tt.body, tt.format, testNow, lim(1000), dst); err != nil {
				t.Fatal(err)
			}
		})
		if got > tt.allocs {
			t.Errorf("%s: %v allocations per Decode, want at most %v", tt.name, got, tt.allocs)
		}
	}
}

func TestValidDeviceID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"device_1", true},
		{"AZaz09._:-", true},
		{strings.Repeat("z", 128), true},
		{"", false},
		{strings.Repeat("z", 129), false},
		{"a b", false},
		{"a/b", false},
		{"é", false},
		{"a\x00", false},
		{"a\"", false},
	}
	for _, tt := range tests {
		if got := ValidDeviceID(tt.id); got != tt.want {
			t.Errorf("ValidDeviceID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestAppendJSONREADMEExample(t *testing.T) {
	in := `{"timestamp":1234567890,"cpu":50.5,"rps":100.0,"device_id":"device_1"}`
	ms, _, err := Decode([]byte(in), JSON, time.Unix(1700000000, 0), lim(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"device_id":"device_1","cpu":50.5,"rps":100,"timestamp":1234567890}`
	if got := string(ms[0].AppendJSON(nil)); got != want {
		t.Errorf("AppendJSON = %s, want %s", got, want)
	}
	got, err := json.Marshal(ms)
	if err != nil || string(got) != "["+want+"]" {
		t.Errorf("json.Marshal = %s, %v; want [%s]", got, err, want)
	}
}

func TestAppendJSONFormats(t *testing.T) {
	tests := []struct {
		m    Metric
		want string
	}{
		{m("d", 0, 0, 946684800), `{"device_id":"d","cpu":0,"rps":0,"timestamp":946684800}`},
		{m("d", 99.99, 1e20, 1714564800.123456), `{"device_id":"d","cpu":99.99,"rps":100000000000000000000,"timestamp":1714564800.123456}`},
		{m("d", 1e-6, 1e21, 1), `{"device_id":"d","cpu":0.000001,"rps":1e+21,"timestamp":1}`},
		{m("d", 1e-7, 5e-324, 2), `{"device_id":"d","cpu":1e-7,"rps":5e-324,"timestamp":2}`},
		{m("d", 0, math.MaxFloat64, 3), `{"device_id":"d","cpu":0,"rps":1.7976931348623157e+308,"timestamp":3}`},
		{m("a\"b\\c\n\x01é\u2028\xff", 1, 2, 3), `{"device_id":"a\"b\\c\n\u0001é\u2028\ufffd","cpu":1,"rps":2,"timestamp":3}`},
		{m("d", math.NaN(), math.Inf(1), 3), `{"device_id":"d","cpu":null,"rps":null,"timestamp":3}`},
		{Metric{DeviceID: "d", NoCPU: true, NoRPS: true, Timestamp: 1, Metrics: []Named{{"temperature", 21.5}, {"battery_v", 1e21}}},
			`{"device_id":"d","timestamp":1,"metrics":{"temperature":21.5,"battery_v":1e+21}}`},
		{Metric{DeviceID: "d", CPU: 1, NoRPS: true, Timestamp: 1, Metrics: []Named{{"a", -0.5}}, Tags: []Tag{{"site", "berlin"}, {"model", "x1"}}},
			`{"device_id":"d","cpu":1,"timestamp":1,"metrics":{"a":-0.5},"tags":{"site":"berlin","model":"x1"}}`},
		{Metric{DeviceID: "d", CPU: 1, RPS: 2, NoCPU: true, Timestamp: 3, Metrics: []Named{{"a", 1}}},
			`{"device_id":"d","rps":2,"timestamp":3,"metrics":{"a":1}}`},
		{Metric{DeviceID: "d", CPU: 1, RPS: 2, Timestamp: 3, Tags: []Tag{{"k", "v"}}, Metrics: []Named{}},
			`{"device_id":"d","cpu":1,"rps":2,"timestamp":3,"tags":{"k":"v"}}`},
		{Metric{DeviceID: "d", NoCPU: true, NoRPS: true, Timestamp: 3, Metrics: []Named{{"a\"b", math.NaN()}}, Tags: []Tag{{"k\n", "v\\"}}},
			`{"device_id":"d","timestamp":3,"metrics":{"a\"b":null},"tags":{"k\n":"v\\"}}`},
	}
	for _, tt := range tests {
		got := string(tt.m.AppendJSON([]byte("x")))
		if got != "x"+tt.want {
			t.Errorf("AppendJSON(%+v) = %s, want x%s", tt.m, got, tt.want)
		}
		if !json.Valid([]byte(tt.want)) {
			t.Errorf("%s is not valid JSON", tt.want)
		}
	}
}

// TestAppendJSONMatchesEncodingJSON checks that numbers and strings are
// written exactly as encoding/json writes them.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		x := randomMetric(r)
		want, err := json.Marshal(struct {
			DeviceID  string  `json:"device_id"`
			CPU       float64 `json:"cpu"`
			RPS       float64 `json:"rps"`
			Timestamp float64 `json:"timestamp"`
		}{x.DeviceID, x.CPU, x.RPS, x.Timestamp})
		if err != nil {
			t.Fatal(err)
		}
		if got := x.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON = %s\nencoding/json = %s", got, want)
		}
	}
}

func TestMarshalJSONRejectsNonFinite(t *testing.T) {
	tests := []Metric{
		m("d", math.NaN(), 0, 0),
		m("d", 0, math.Inf(1), 0),
		m("d", 0, 0, math.Inf(-1)),
		{DeviceID: "d", NoCPU: true, NoRPS: true, Metrics: []Named{{"a", 1}, {"b", math.Inf(1)}}},
	}
	for _, x := range tests {
		if b, err := x.MarshalJSON(); err == nil {
			t.Errorf("MarshalJSON(%+v) = %s, want error", x, b)
		}
	}
	// An absent signal is not written, whatever its value.
	x := Metric{DeviceID: "d", CPU: math.NaN(), NoCPU: true, RPS: math.Inf(1), NoRPS: true, Metrics: []Named{{"a", 1}}}
	if b, err := x.MarshalJSON(); err != nil || string(b) != `{"device_id":"d","timestamp":0,"metrics":{"a":1}}` {
		t.Errorf("MarshalJSON(%+v) = %s, %v", x, b, err)
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		x := randomMetric(r)
		if i%2 == 1 {
			addNamed(r, &x)
		}
		b := x.AppendJSON(nil)
		ms, single, err := Decode(b, JSON, testNow, Limits{Batch: 1, Metrics: MaxMetricsLimit}, nil)
		if err != nil || !single || len(ms) != 1 || !reflect.DeepEqual(ms[0], x) {
			t.Fatalf("Decode(%s) = %v, %v, %v; want [%+v]", b, ms, single, err, x)
		}
		mb, err := x.MarshalJSON()
		if err != nil || string(mb) != string(b) {
			t.Fatalf("MarshalJSON = %s, %v; want %s", mb, err, b)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Kind: Invalid, Message: "empty body"}, "empty body"},
		{&Error{Kind: Invalid, Message: "invalid metrics", Details: []FieldError{{2, "cpu", "must be between 0 and 100"}}},
			`invalid metrics: index 2: field "cpu": must be between 0 and 100`},
		{&Error{Kind: Invalid, Message: "malformed JSON", Details: []FieldError{{0, "", "x at offset 3"}, {1, "", "y"}, {2, "", "z"}}},
			`malformed JSON: index 0: x at offset 3 (and 2 more)`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestFieldErrorJSON(t *testing.T) {
	b, err := json.Marshal([]FieldError{{0, "", "body is empty"}, {3, "cpu", "required"}})
	const want = `[{"index":0,"reason":"body is empty"},{"index":3,"field":"cpu","reason":"required"}]`
	if err != nil || string(b) != want {
		t.Errorf("json.Marshal = %s, %v; want %s", b, err, want)
	}
}

// randomMetric returns a metric that passes validation at testNow.
func randomMetric(r *rand.Rand) Metric {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
	id := make([]byte, 1+r.IntN(MaxDeviceIDLen))
	for i := range id {
		id[i] = chars[r.IntN(len(chars))]
	}
	x := Metric{DeviceID: string(id)}
	switch r.IntN(4) {
	case 0:
		x.CPU = float64(r.IntN(101))
	case 1:
		x.CPU = r.Float64() * 100
	case 2:
		x.CPU = math.Ldexp(r.Float64(), -r.IntN(1070)) // down to subnormals
	default:
		x.CPU = math.Round(r.Float64()*10000) / 100
	}
	switch r.IntN(4) {
	case 0:
		x.RPS = float64(r.Uint32N(MaxRPS + 1))
	case 1:
		x.RPS = math.Float64frombits(r.Uint64() &^ (1 << 63))
		if !(x.RPS <= MaxRPS) {
			x.RPS = MaxRPS
		}
	case 2:
		x.RPS = math.Ldexp(r.Float64(), -r.IntN(1070))
	default:
		x.RPS = r.Float64() * 1e6
	}
	switch r.IntN(3) {
	case 0:
		x.Timestamp = float64(minTimestamp + r.Int64N(int64(nowSec)+300-minTimestamp+1))
	case 1:
		x.Timestamp = minTimestamp + r.Float64()*(nowSec+300-minTimestamp)
	default:
		x.Timestamp = nowSec + 300
	}
	return x
}

// addNamed gives x valid named metrics (up to MaxMetricsLimit, perhaps
// without cpu or rps) and tags, or only tags.
func addNamed(r *rand.Rand, x *Metric) {
	const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
	key := func(maxLen int) string {
		const first, rest = "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz0123456789_"
		b := []byte{first[r.IntN(len(first))]}
		for range r.IntN(maxLen) {
			b = append(b, rest[r.IntN(len(rest))])
		}
		return string(b)
	}
	if n := r.IntN(MaxMetricsLimit + 1); n > 0 {
		seen := map[string]bool{"cpu": true, "rps": true}
		for len(x.Metrics) < n {
			name := key(MaxNameLen)
			if seen[name] {
				continue
			}
			seen[name] = true
			v := math.Float64frombits(r.Uint64())
			if !finite(v) || v == 0 {
				v = r.NormFloat64()
			}
			x.Metrics = append(x.Metrics, Named{name, v})
		}
		x.NoCPU, x.NoRPS = r.IntN(2) == 0, r.IntN(2) == 0
		if x.NoCPU {
			x.CPU = 0
		}
		if x.NoRPS {
			x.RPS = 0
		}
	}
	seen := map[string]bool{}
	for range r.IntN(MaxTags + 1) {
		k := key(MaxTagKeyLen)
		if seen[k] {
			continue
		}
		seen[k] = true
		v := make([]byte, 1+r.IntN(MaxTagValueLen))
		for i := range v {
			v[i] = idChars[r.IntN(len(idChars))]
		}
		x.Tags = append(x.Tags, Tag{k, string(v)})
	}
}

func batchBody(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"device_id":"sensor-` + itoa(i) + `","cpu":` + itoa(i%100) + `.25,"rps":` + itoa(i*7) + `,"timestamp":1714564000.5}`)
	}
	b.WriteByte(']')
	return b.String()
}

func ndjsonBody(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`{"device_id":"sensor-` + itoa(i) + `","cpu":` + itoa(i%100) + `.25,"rps":` + itoa(i*7) + `,"timestamp":"2024-05-01T11:59:00Z"}` + "\r\n")
	}
	return b.String()
}

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// TestFastNumberMatchesParseFloat checks the integer/decimal fast path
// against strconv.ParseFloat.
func TestFastNumberMatchesParseFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	fixed := []string{"0", "-0", "1", "-1", "0.1", "0.3", "100", "100.0", "99.99", "0.000000000000001",
		"999999999999999", "99999999999999.9", "9007199254740993", "1714564800.123456", "4.35", "1e2", "0.1e1"}
	check := func(s string) {
		want, err := strconv.ParseFloat(s, 64)
		got, ok := fastNumber([]byte(s))
		if ok && (err != nil || math.Float64bits(got) != math.Float64bits(want)) {
			t.Fatalf("fastNumber(%q) = %v, ParseFloat = %v, %v", s, got, want, err)
		}
	}
	for _, s := range fixed {
		check(s)
	}
	for range 200000 {
		digits := 1 + r.IntN(17)
		b := make([]byte, 0, 20)
		if r.IntN(2) == 0 {
			b = append(b, '-')
		}
		point := r.IntN(digits + 1)
		for i := range digits {
			if i == point && i > 0 {
				b = append(b, '.')
			}
			if i == 0 && (point > 1 || point == digits) {
				b = append(b, byte('1'+r.IntN(9)))
			} else if i == 0 {
				b = append(b, '0')
			} else {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		check(string(b))
	}
}
