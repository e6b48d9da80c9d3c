package notify

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/alertmanagertest"
)

func benchAlerts(n int) []Alert {
	out := make([]Alert, n)
	for i := range out {
		a := alertOf("01J0ALERT"+strconv.Itoa(i), "sensor-"+strconv.Itoa(i), StateOpen)
		a.Tags = map[string]string{"site": "berlin", "rack": "r7"}
		out[i] = a
	}
	return out
}

// BenchmarkEncode measures the body of one post: 64 alerts (a full batch)
// with two tags each and links.
func BenchmarkEncode(b *testing.B) {
	enc := Encoder{Resend: time.Minute, LinkBase: "https://pulse.example.com/api"}
	alerts := benchAlerts(64)
	body, _ := enc.Encode(alerts, time.Now())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	now := time.Now()
	for b.Loop() {
		if _, err := enc.Encode(alerts, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/alert")
}

// BenchmarkRecord measures what the analyzer adds per alert change to its
// batch: the record's JSON.
func BenchmarkRecord(b *testing.B) {
	a := benchAlerts(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Record(a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliveryLatency measures an alert's way from its write to the
// outbox to a webhook notification through a real Alertmanager
// (group_wait 0, each alert its own group): b.N alerts, one every 10ms,
// the p50/p99/max reported. Run it with -benchtime=200x.
func BenchmarkDeliveryLatency(b *testing.B) {
	rdb := redisSrv.Client()
	defer rdb.Close()
	keys := KeysFor(redisSrv.Prefix(b), 3)
	hook := alertmanagertest.NewReceiver(b)
	am := alertmanagertest.Start(b, hook.URL, alertmanagertest.Config{})
	opt := fastOptions(am.URL)
	opt.Poll = time.Second // delivery is woken, as the analyzer will do
	s := newSender(b, rdb, opt)
	s.run(b, keys)

	ctx := context.Background()
	written := make(map[string]time.Time, b.N)
	alerts := make([]Alert, b.N)
	for i := range alerts {
		alerts[i] = alertOf("L"+strconv.Itoa(i), "lat-"+strconv.Itoa(i), StateOpen)
	}
	b.ResetTimer()
	for i, a := range alerts {
		written[a.DeviceID] = time.Now()
		if _, err := Enqueue(ctx, rdb, keys, 10000, a); err != nil {
			b.Fatal(err)
		}
		s.Wake()
		if i < len(alerts)-1 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	ns := hook.WaitFor(b, time.Minute, "every alert notified", func(ns []alertmanagertest.Notification) bool { return len(ns) >= b.N })
	b.StopTimer()
	var lat []time.Duration
	for _, n := range ns {
		for _, a := range n.Alerts {
			if t0, ok := written[a.Labels["device_id"]]; ok {
				lat = append(lat, n.Received.Sub(t0))
				delete(written, a.Labels["device_id"])
			}
		}
	}
	if len(lat) != b.N {
		b.Fatalf("%d alerts notified, want %d", len(lat), b.N)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op") // the loop's time is paced, not measured
}
