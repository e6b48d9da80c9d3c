package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/tools/nab"
	"github.com/pulse-iot/pulse/tools/realdata"
)

// nabSeries are the NAB series the test pushes: short ones of four
// categories with several alerts each, one with an alert still open at
// its end, and no negative values (rps must be ≥ 0): about 8,300 events.
var nabSeries = []string{
	"realTraffic/speed_7578.csv",
	"realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
	"realKnownCause/rogue_agent_key_hold.csv",
	"realKnownCause/ec2_request_latency_system_failure.csv",
}

// nabDir is make nab's NAB_DIR: the environment's, else ../shared/nab
// beside the repository root.
func nabDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("NAB_DIR"); d != "" {
		return d
	}
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		t.Fatalf("go env GOWORK: %v", err)
	}
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "..", "shared", "nab")
}

// NAB series through the real binaries — the series' value as rps, cpu
// constant, the series' own timestamps, posted in arrays of 1000 events —
// give the alerts of the in-process run that make nab scores
// (tools/realdata): the same episodes, numbers, times, scores, z, values,
// bands and event counts.
func TestNABSeriesGiveTheInProcessAlerts(t *testing.T) {
	dir := nabDir(t)
	corpus, err := nab.Load(dir)
	if errors.Is(err, nab.ErrNoCorpus) {
		t.Skipf("no NAB checkout at %s (git clone https://github.com/numenta/NAB there, or set NAB_DIR): %v", dir, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := realdata.DefaultConfig() // the services' defaults, as make nab runs them
	p := startPipeline(t, 2, "robust")
	want := map[string][]state.Alert{}
	var events []event
	for _, name := range nabSeries {
		i := 0
		for i < len(corpus.Series) && corpus.Series[i].Name != name {
			i++
		}
		if i == len(corpus.Series) {
			t.Fatalf("%s has no series %s", dir, name)
		}
		s := corpus.Series[i]
		device := "nab." + strings.NewReplacer("/", ".", ".csv", "").Replace(name)
		times := make([]float64, len(s.Times))
		for j, tm := range s.Times {
			times[j] = float64(tm.Unix())
			events = append(events, event{DeviceID: device, CPU: 50, RPS: s.Values[j], Timestamp: times[j]})
		}
		tr := realdata.RunSignal(cfg, times, s.Values)
		want[device] = episodes(device, tr, cfg.Alert)
		// The openings are make nab's detections.
		openings := realdata.Openings(nil, tr, cfg.Alert)
		var scores []float64
		for _, v := range openings {
			if v > 0 {
				scores = append(scores, v)
			}
		}
		if len(scores) == 0 || len(scores) != len(want[device]) {
			t.Fatalf("test data: %s opens %d alerts in process (episodes %d); built for some", name, len(scores), len(want[device]))
		}
	}
	if err := p.post(t, events, 1000, nil); err != nil {
		t.Fatal(err)
	}
	p.waitProcessed(t, int64(len(events)))
	total, open := 0, 0
	for device, list := range want {
		p.checkAlerts(t, device, list)
		total += len(list)
		if list[0].Open {
			open++
		}
	}
	if open == 0 {
		t.Errorf("test data: no alert open at the end; the series are chosen for one")
	}
	t.Logf("%d NAB series, %d events: %d alerts in process, %d open at the end", len(nabSeries), len(events), total, open)
}

// episodes steps the alert layer over a signal's trace as the analyzer
// does, and returns the device's alerts, newest first, numbered from 1.
func episodes(device string, tr realdata.Trace, p alert.Params) []state.Alert {
	var st alert.State
	var out []state.Alert
	for i := range tr.Scores {
		in := alert.Input{Time: tr.Times[i], Value: tr.Values[i], Score: tr.Scores[i], Z: tr.Z[i], Low: tr.Low[i], High: tr.High[i]}
		ch := p.Step(&st, in)
		if ch == alert.Opened {
			out = append(out, state.Alert{})
		}
		if ch != alert.None || st.Alert.Open {
			a := st.Alert
			out[len(out)-1] = state.Alert{DeviceID: device, Seq: uint64(len(out)), Signal: "rps", Open: a.Open, OpenedAt: a.OpenedAt,
				ClosedAt: a.ClosedAt, Score: a.Score, Z: a.Z, Value: a.Value, Low: a.Low, High: a.High, Events: a.Events}
		}
	}
	slices.Reverse(out)
	return out
}
