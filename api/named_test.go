package main

import (
	"reflect"
	"testing"

	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/stream"
)

// sensorFleet is 600 events of three temperature sensors on two sites:
// th-1 and th-2 in berlin, th-3 in paris. They send temperature and
// humidity only, but th-1, which sends rps and cpu too; th-3's
// temperature jumps twice.
func sensorFleet() []stream.Event {
	var events []stream.Event
	for i := 0; i < 200; i++ {
		for k, d := range []string{"th-1", "th-2", "th-3"} {
			temp := 20 + float64((i+k)%5)/10
			if d == "th-3" && (i == 90 || i == 170) {
				temp = 45
			}
			e := stream.Event{DeviceID: d, NoCPU: true, NoRPS: true, Metrics: []metric.Named{
				{Name: "temperature", Value: temp}, {Name: "humidity", Value: 40 + float64((i*7+k)%3)}}}
			if d == "th-1" {
				e.NoCPU, e.NoRPS, e.CPU, e.RPS = false, false, 30+float64(i%4), 10+float64(i%6)
			}
			if i == 0 || i == 150 {
				site := "berlin"
				if d == "th-3" {
					site = "paris"
				}
				e.Tags = []metric.Tag{{Key: "model", Value: "x1"}, {Key: "site", Value: site}}
			}
			events = append(events, e)
		}
	}
	return events
}

// Named signals and tags through the results contract: the device view's
// signals, the fleet view of one signal, tag groups and filters, and the
// selectors' lists, against internal/analysis and plain arithmetic.
func TestNamedSignalsAndTags(t *testing.T) {
	t.Parallel()
	ac := defaultAnalysis
	prefix := redisSrv.Prefix(t)
	events := seed(t, prefix, ac, sensorFleet())
	ref := analyze(t, ac, events)
	paris := filterDevice(ref.Anomalies, "th-3")
	if len(paris) != 2 || paris[0].Signal != "temperature" {
		t.Fatalf("test data: th-3's anomalies %+v, built for its two temperature jumps", paris)
	}
	h := newTestAPI(t, apiEnv(redisSrv, prefix, ac))

	var temps []float64
	for _, e := range events {
		temps = append(temps, e.Metrics[0].Value)
	}
	tMean, tSD := meanStdDev(temps, ac.Window)
	signal := func(id, name string) map[string]any {
		st := ref.States[id]
		n := st.Named[st.FindNamed(name)-2]
		var vals []float64
		for _, e := range events {
			if e.DeviceID == id {
				for _, m := range e.Metrics {
					if m.Name == name {
						vals = append(vals, m.Value)
					}
				}
			}
		}
		mean, sd := meanStdDev(vals, ac.Window)
		return map[string]any{"rolling_average": mean, "mean": mean, "std_dev": sd, "z_score": n.LastZ, "score": n.LastScore,
			"value": vals[len(vals)-1], "samples": ac.Window, "anomaly_count": n.Anomalies}
	}
	th1 := ref.States["th-1"]
	rpsMean, rpsSD := th1.RPS.MeanStdDev()
	cpuMean, cpuSD := th1.CPU.MeanStdDev()
	tests := []struct {
		name string
		path string
		want map[string]any
	}{
		{"device with named signals only", "/analyze?device_id=th-3", map[string]any{
			"signals": map[string]any{"temperature": signal("th-3", "temperature"), "humidity": signal("th-3", "humidity")},
			"tags":    map[string]any{"model": "x1", "site": "paris"}, "dropped_signals": 0, "total_processed": 200,
			"anomaly_count": 2, "samples": 0,
		}},
		{"device with rps, cpu and named signals", "/analyze?device_id=th-1", map[string]any{
			"signals": map[string]any{"temperature": signal("th-1", "temperature"), "humidity": signal("th-1", "humidity"),
				"rps": map[string]any{"rolling_average": rpsMean, "mean": rpsMean, "std_dev": rpsSD, "z_score": th1.Last.ZRPS,
					"score": th1.Last.ScoreRPS, "value": th1.Last.RPS, "samples": ac.Window, "anomaly_count": 0},
				"cpu": map[string]any{"rolling_average": cpuMean, "mean": cpuMean, "std_dev": cpuSD, "z_score": th1.Last.ZCPU,
					"score": th1.Last.ScoreCPU, "value": th1.Last.CPU, "samples": ac.Window, "anomaly_count": 0}},
			"tags": map[string]any{"model": "x1", "site": "berlin"},
		}},
		{"fleet view of a named signal", "/analyze?signal=temperature", map[string]any{
			"signal": "temperature", "rolling_average": tMean, "mean": tMean, "std_dev": tSD, "anomaly_count": 2,
			"total_processed": 600, "samples": ac.Window, "devices": 3, "open_alerts": 0,
		}},
		{"fleet view of rps is /analyze", "/analyze?signal=rps", map[string]any{"total_processed": 600, "devices": 3, "samples": ac.Window}},
		{"group", "/analyze?tag=site:berlin", map[string]any{"tag": "site:berlin", "devices": 2, "total_processed": 400,
			"anomaly_count": 0, "anomaly_rate": 0, "open_alerts": 0}},
		{"group of a tag nobody carries", "/analyze?tag=site:rome", map[string]any{"devices": 0, "total_processed": 0}},
		{"devices by tag", "/devices?tag=site:berlin", map[string]any{"devices": []any{
			map[string]any{"device_id": "th-1", "total_processed": 200}, map[string]any{"device_id": "th-2", "total_processed": 200}}}},
		{"anomalies by tag", "/anomalies?tag=site:paris", map[string]any{"anomalies": newestFirst(paris, 100)}},
		{"no anomalies in berlin", "/anomalies?tag=site:berlin", map[string]any{"anomalies": []any{}}},
		{"alerts by tag", "/alerts?tag=site:paris", map[string]any{"alerts": alertsJSON(ref.Alerts, "th-3", "all", 100)}},
		{"signals", "/signals", map[string]any{"signals": []string{"cpu", "humidity", "rps", "temperature"}}},
		{"tags", "/tags", map[string]any{"tags": map[string]any{"model": []string{"x1"}, "site": []string{"berlin", "paris"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]any
			getJSON(t, h, tc.path, &got)
			for k, want := range normalize(t, tc.want).(map[string]any) {
				if k == "devices" {
					if list, ok := got[k].([]any); ok { // rows: compare the fields the test names
						for i, row := range list {
							for f := range row.(map[string]any) {
								if _, named := want.([]any)[i].(map[string]any)[f]; !named {
									delete(row.(map[string]any), f)
								}
							}
						}
					}
				}
				if !reflect.DeepEqual(got[k], want) {
					t.Errorf("GET %s: %q = %v, want %v", tc.path, k, got[k], want)
				}
			}
		})
	}
	var fleet map[string]any
	getJSON(t, h, "/analyze?signal=temperature", &fleet)
	if fleet["anomaly_rate"] != rate(2, 600) {
		t.Errorf("temperature anomaly_rate = %v, want %v", fleet["anomaly_rate"], rate(2, 600))
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/analyze?signal=pressure", 404},
		{"/analyze?signal=Temperature", 400},
		{"/analyze?signal=temperature&device_id=th-1", 400},
		{"/analyze?tag=site", 400},
		{"/analyze?tag=Site:berlin", 400},
		{"/analyze?tag=site:", 400},
		{"/devices?tag=site:b%20b", 400},
		{"/anomalies?tag=site:berlin&device_id=th-1", 400},
		{"/alerts?tag=nope", 400},
	} {
		if r := get(h, tc.path); r.status != tc.status {
			t.Errorf("GET %s: %d %s, want %d", tc.path, r.status, r.body, tc.status)
		}
	}
}
