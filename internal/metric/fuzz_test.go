package metric

import (
	"math"
	"reflect"
	"testing"
)

// fuzzMaxBatch is small so the fuzzer reaches the TooLarge path.
const fuzzMaxBatch = 4

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
		if diff := checkAgainstReference(body, format, testNow, fuzzMaxBatch); diff != "" {
			t.Fatalf("Decode(%q, %v) disagrees with the oracle:\n%s", body, format, diff)
		}
		ms, single, err := Decode(body, format, testNow, fuzzMaxBatch, nil)
		if err != nil {
			return
		}
		if len(ms) == 0 || len(ms) > fuzzMaxBatch {
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
			again, _, err := Decode(re.body, re.format, testNow, fuzzMaxBatch, nil)
			if err != nil || !reflect.DeepEqual(again, ms) {
				t.Fatalf("re-decoding %s gave %v, %v; want %v", re.body, again, err, ms)
			}
		}
		if single {
			again, single2, err := Decode(ms[0].AppendJSON(nil), JSON, testNow, 1, nil)
			if err != nil || !single2 || again[0] != ms[0] {
				t.Fatalf("re-decoding the single object gave %v, %v, %v", again, single2, err)
			}
		}
	})
}
