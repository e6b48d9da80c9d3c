package metric

import "testing"

func BenchmarkDecode(b *testing.B) {
	benchmarks := []struct {
		name   string
		format Format
		body   string
		n      int
	}{
		{"Single", JSON, `{"device_id":"device_1","cpu":50.5,"rps":100.0,"timestamp":1714564000.25}`, 1},
		{"SingleRFC3339", JSON, `{"device_id":"device_1","cpu":50.5,"rps":100.0,"timestamp":"2024-05-01T11:59:00.123Z"}`, 1},
		{"Batch1000", JSON, batchBody(1000), 1000},
		{"NDJSON1000", NDJSON, ndjsonBody(1000), 1000},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			body := []byte(bm.body)
			dst := make([]Metric, 0, bm.n)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				ms, _, err := Decode(body, bm.format, testNow, lim(1000), dst)
				if err != nil || len(ms) != bm.n {
					b.Fatal(err, len(ms))
				}
			}
		})
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
