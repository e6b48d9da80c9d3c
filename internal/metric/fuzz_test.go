package metric

import (
	"math"
	"reflect"
	"testing"
)

// fuzzLimits are small so the fuzzer reaches the TooLarge path and too
// many named metrics.
var fuzzLimits = Limits{Batch: 4, Metrics: 3}

// FuzzDecode checks that Decode never panics, agrees with the
// encoding/json oracle, only returns metrics that satisfy the rules, and
// that AppendJSON output decodes back to the same metrics.
func FuzzDecode(f *testing.F) {
	seeds := []struct {
		body   string
		ndjson bool
	}{
		{`{"timestamp":1234567890,"cpu":50.5,"rps":100.0,"device_id":"device_1"}`, false},
		{`[{"device_id":"a","cpu":1,"rps":2},{"device_id":"b","cpu":3,"rps":4,"timestamp":"2024-05-01T11:00:00.5+02:00"}]`, false},
		{`{"device_id":"\u0041\/","cpu":1e2,"rps":-0,"timestamp":"2024-05-01T12:05:00Z"}`, false},
		{`{"device_id":"d","cpu":NaN,"rps":Infinity}`, false},
		{`{"device_id":"d","cpu":01,"rps":1e999,"x":{"y":[true,false,null]},"cpu":2}`, false},
		{`[1,"x",null,[],{}]`, false},
		{`[{"device_id":"d\ud83d\ude00","cpu":1,"rps":1},{"\u0063pu":1}]`, false},
		{"{\"device_id\":\"d1\",\"cpu\":1,\"rps\":2}\r\n\r\n{\"device_id\":\"d2\",\"cpu\":3,\"rps\":4,\"timestamp\":1714564000.25}\n", true},
		{"\n \n42\n[]\n{}", true},
		{"{\"device_id\":\"d1\",\n\"cpu\":1,\"rps\":2}", true},
		{"{\"device_id\":\"\xff\"}", false},
		{`{"device_id":"d1","metrics":{"temperature":21.5,"battery_v":3.71},"tags":{"site":"berlin","model":"x1"}}`, false},
		{`{"device_id":"d1","cpu":1,"metrics":{"a":-0,"b":1e-400,"c":-1.7976931348623157e308}}`, false},
		{`{"device_id":"d1","cpu":1,"rps":2,"metrics":{},"tags":{}}`, false},
		{`{"device_id":"d1","metrics":{}}`, false},
		{`{"device_id":"d1","metrics":{"a":1,"b":2,"c":3,"d":4},"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}}`, false},
		{`{"device_id":"d1","metrics":{"cpu":1,"A":2,"a":"x","a":1,"b":1e999,"c":{"x":[null]}}}`, false},
		{`{"device_id":"d1","metrics":[],"tags":null,"metrics":{"\u0061":1}}`, false},
		{`{"device_id":"d1","cpu":1,"rps":2,"tags":{"k":"v","k":"w","K":"v","e":"","s":"a b","n":1,"\u0065sc":"\u0041"}}`, false},
		{"{\"device_id\":\"d1\",\"metrics\":{\"x\":1}}\n{\"device_id\":\"d1\",\"rps\":1,\"metrics\":{\"x\":2},\"tags\":{\"a\":\"b\"}}\n", true},
		{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", false},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.ndjson)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		format := JSON
		if ndjson {
			format = NDJSON
		}
		if diff := checkAgainstReference(body, format, testNow, fuzzLimits); diff != "" {
			t.Fatalf("Decode(%q, %v) disagrees with the oracle:\n%s", body, format, diff)
		}
		ms, single, err := Decode(body, format, testNow, fuzzLimits, nil)
		if err != nil {
			return
		}
		if len(ms) == 0 || len(ms) > fuzzLimits.Batch {
			t.Fatalf("accepted %d metrics", len(ms))
		}
		limit := unixSeconds(testNow.Add(MaxFuture))
		for _, x := range ms {
			switch {
			case !ValidDeviceID(x.DeviceID):
				t.Fatalf("invalid device ID in %+v", x)
			case !(x.CPU >= 0 && x.CPU <= 100) || math.Signbit(x.CPU):
				t.Fatalf("cpu out of range in %+v", x)
			case !(x.RPS >= 0) || math.IsInf(x.RPS, 0) || math.Signbit(x.RPS):
				t.Fatalf("rps out of range in %+v", x)
			case !(x.Timestamp >= minTimestamp && x.Timestamp <= limit):
				t.Fatalf("timestamp out of range in %+v", x)
			case (x.NoCPU || x.NoRPS) && len(x.Metrics) == 0:
				t.Fatalf("a signal is absent without named metrics in %+v", x)
			case x.NoCPU && x.CPU != 0, x.NoRPS && x.RPS != 0:
				t.Fatalf("an absent signal has a value in %+v", x)
			case len(x.Metrics) > fuzzLimits.Metrics, len(x.Tags) > MaxTags:
				t.Fatalf("too many named metrics or tags in %+v", x)
			case x.Metrics != nil && len(x.Metrics) == 0, x.Tags != nil && len(x.Tags) == 0:
				t.Fatalf("empty but not nil Metrics or Tags in %+v", x)
			}
			names := map[string]bool{}
			for _, n := range x.Metrics {
				if !ValidName(n.Name) || Reserved(n.Name) || names[n.Name] || !finite(n.Value) || math.Signbit(n.Value) && n.Value == 0 {
					t.Fatalf("invalid named metric %+v in %+v", n, x)
				}
				names[n.Name] = true
			}
			keys := map[string]bool{}
			for _, tg := range x.Tags {
				if !ValidTagKey(tg.Key) || !ValidTagValue(tg.Value) || keys[tg.Key] {
					t.Fatalf("invalid tag %+v in %+v", tg, x)
				}
				keys[tg.Key] = true
			}
		}

		// Re-encode as the format we got and as the other one.
		var arr, lines []byte
		arr = append(arr, '[')
		for i, x := range ms {
			if i > 0 {
				arr = append(arr, ',')
			}
			arr = x.AppendJSON(arr)
			lines = append(x.AppendJSON(lines), '\n')
		}
		arr = append(arr, ']')
		reencoded := []struct {
			body   []byte
			format Format
		}{{arr, JSON}, {lines, NDJSON}}
		for _, re := range reencoded {
			again, _, err := Decode(re.body, re.format, testNow, fuzzLimits, nil)
			if err != nil || !reflect.DeepEqual(again, ms) {
				t.Fatalf("re-decoding %s gave %v, %v; want %v", re.body, again, err, ms)
			}
		}
		if single {
			again, single2, err := Decode(ms[0].AppendJSON(nil), JSON, testNow, Limits{Batch: 1, Metrics: fuzzLimits.Metrics}, nil)
			if err != nil || !single2 || !reflect.DeepEqual(again[0], ms[0]) {
				t.Fatalf("re-decoding the single object gave %v, %v, %v", again, single2, err)
			}
		}
	})
}
