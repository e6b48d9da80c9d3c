package metric

import "testing"

func BenchmarkDecodeSingle(b *testing.B) {
	body := []byte(`{"device_id":"device_1","cpu":50.5,"rps":100.0,"timestamp":1714564000.25}`)
	dst := make([]Metric, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := Decode(body, JSON, testNow, 1000, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSingleRFC3339(b *testing.B) {
	body := []byte(`{"device_id":"device_1","cpu":50.5,"rps":100.0,"timestamp":"2024-05-01T11:59:00.123Z"}`)
	dst := make([]Metric, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := Decode(body, JSON, testNow, 1000, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch1000(b *testing.B) {
	body := []byte(batchBody(1000))
	dst := make([]Metric, 0, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ms, _, err := Decode(body, JSON, testNow, 1000, dst)
		if err != nil || len(ms) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeNDJSON1000(b *testing.B) {
	body := []byte(ndjsonBody(1000))
	dst := make([]Metric, 0, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ms, _, err := Decode(body, NDJSON, testNow, 1000, dst)
		if err != nil || len(ms) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	m := Metric{DeviceID: "device_1", CPU: 50.5, RPS: 100, Timestamp: 1714564000.25}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendJSON(buf[:0])
	}
}
