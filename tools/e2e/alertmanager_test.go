package e2e

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/alertmanagertest"
	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/poll"
)

// episodeSeries is each device's rps in four phases: warm-up, a level
// shift that opens an alert, recovery that closes it, a second shift and
// a second recovery; one event a second, an hour ago.
type episodeSeries struct {
	devices []string
	t0      float64
	rng     *rand.Rand
	next    map[string]int // each device's next event number
}

const (
	warmEvents     = 300
	shiftEvents    = 15
	recoveryEvents = 40
	shiftBy        = 200 // rps; the noise is 5
)

func newEpisodeSeries(n int) *episodeSeries {
	s := &episodeSeries{t0: float64(time.Now().Add(-time.Hour).Unix()), rng: rand.New(rand.NewPCG(11, 2)), next: map[string]int{}}
	for i := 0; i < n; i++ {
		s.devices = append(s.devices, fmt.Sprintf("sensor-%02d", i))
	}
	return s
}

// phase returns perDevice events of every device, interleaved, with rps
// shifted by shift.
func (s *episodeSeries) phase(perDevice int, shift float64) []event {
	var out []event
	for j := 0; j < perDevice; j++ {
		for k, d := range s.devices {
			n := s.next[d]
			s.next[d]++
			out = append(out, event{DeviceID: d, CPU: 40 + s.rng.NormFloat64(), RPS: 100 + 3*float64(k) + 5*s.rng.NormFloat64() + shift,
				Timestamp: s.t0 + float64(n)})
		}
	}
	return out
}

// notified counts the notifications of status per device.
func notified(ns []alertmanagertest.Notification, status string) map[string]int {
	out := map[string]int{}
	for _, n := range ns {
		if n.Status == status {
			out[n.GroupLabels["device_id"]]++
		}
	}
	return out
}

// Device alerts reach a real Alertmanager and its webhook receiver: every
// alert the pipeline opens fires once, with the labels and annotations of
// docs/ALERTING.md, and resolves once when it closes, as applying the
// events in one process says. The events are posted up to each alert
// change, and the test waits for its notification. Analyzers SIGKILLed as
// alerts are written and delivered, and their successors' re-sends, give
// no second notification; an alert raised while Alertmanager is down
// waits in the outbox and is delivered when it is back.
func TestDeviceAlertsReachAlertmanager(t *testing.T) {
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})
	series := newEpisodeSeries(6)
	devices := series.devices
	var all []event
	for _, p := range [][]event{series.phase(warmEvents, 0), series.phase(shiftEvents, shiftBy), series.phase(recoveryEvents, 0),
		series.phase(shiftEvents, shiftBy), series.phase(recoveryEvents, 0)} {
		all = append(all, p...)
	}
	// The change points: after which event the alerts of each change open
	// or close (one event a second per device, interleaved), as applying
	// the events in one process with the services' settings says.
	res, _ := applyInOrder(t, "robust", all)
	changes := res.Alerts
	index := func(c analysis.AlertChange) int {
		ts := c.Alert.OpenedAt
		if c.Change == alert.Closed {
			ts = c.Alert.ClosedAt
		}
		return int(ts-series.t0)*len(devices) + slices.Index(devices, c.Alert.DeviceID)
	}
	opened := map[string]int{}
	for _, c := range changes {
		if c.Change == alert.Opened {
			opened[c.Alert.DeviceID]++
		}
	}
	for _, d := range devices {
		if opened[d] < 2 {
			t.Fatalf("test data: alerts opened per device %v; built for at least two each", opened)
		}
	}

	const linkBase = "https://pulse.example.com/api"
	p := startPipeline(t, 2, "robust", "ALERTMANAGER_URL="+am.URL, "ALERT_RESEND=1s", "ALERT_LINK_BASE="+linkBase)
	sent := 0
	// postThrough posts the events up to and including last, the last one
	// alone, and returns when that one was sent.
	postThrough := func(last int) time.Time {
		t.Helper()
		if err := p.post(t, all[sent:last], 40, nil); err != nil {
			t.Fatal(err)
		}
		posted := time.Now()
		if err := p.post(t, all[last:last+1], 1, nil); err != nil {
			t.Fatal(err)
		}
		sent = last + 1
		return posted
	}
	firing, resolved := map[string]int{}, map[string]int{}
	var latencies []time.Duration
	killed, down := false, false
	for i := 0; i < len(changes); {
		// Every change at this event, and what Alertmanager must then have said.
		at := index(changes[i])
		onlyOpened := true
		j := i
		for ; j < len(changes) && index(changes[j]) == at; j++ {
			if changes[j].Change == alert.Opened {
				firing[changes[j].Alert.DeviceID]++
			} else {
				resolved[changes[j].Alert.DeviceID]++
				onlyOpened = false
			}
		}
		stopped := !down && onlyOpened && 2*i >= len(changes)
		if stopped {
			am.Stop()
			down = true
		}
		posted := postThrough(at)
		kill := !killed && onlyOpened
		switch {
		case kill:
			// Killed right after writing the alerts, likely before posting them.
			p.analyzers[0].signal(syscall.SIGKILL)
			p.analyzers[0].launch()
			killed = true
		case stopped:
			poll.True(t, 60*time.Second, "the alerts open while Alertmanager is down", func() bool {
				var open struct {
					Alerts []alertView `json:"alerts"`
				}
				getJSON(t, p.api.URL("/alerts?state=open&limit=1000"), &open)
				n := 0
				for _, d := range devices {
					n += firing[d] - resolved[d]
				}
				return len(open.Alerts) == n
			})
			time.Sleep(2 * time.Second) // posts fail meanwhile and are retried
			am.Restart(t)
		}
		what := fmt.Sprintf("notifications after event %d: firing %v, resolved %v", at, firing, resolved)
		ns := hook.WaitFor(t, 60*time.Second, what, func(ns []alertmanagertest.Notification) bool {
			return maps.Equal(notified(ns, "firing"), firing) && maps.Equal(notified(ns, "resolved"), resolved)
		})
		if onlyOpened && !stopped && !kill {
			latencies = append(latencies, ns[len(ns)-1].Received.Sub(posted))
		}
		i = j
	}
	if sent < len(all) {
		postThrough(len(all) - 1)
	}
	p.waitProcessed(t, int64(len(all)))
	// Nothing more arrives: a re-send of a closed alert or a duplicate would.
	time.Sleep(3 * time.Second)
	ns := hook.Notifications()
	if !maps.Equal(notified(ns, "firing"), firing) || !maps.Equal(notified(ns, "resolved"), resolved) {
		t.Errorf("at the end: firing %v, resolved %v; want %v, %v", notified(ns, "firing"), notified(ns, "resolved"), firing, resolved)
	}
	checkNotifications(t, p, devices, ns, linkBase)
	slices.Sort(latencies)
	t.Logf("%d alert changes; an alert's opening event posted → its notification received, %d samples: %v",
		len(changes), len(latencies), latencies)
}

// checkNotifications checks each notification's alert against the alert
// GET /alerts lists: labels, annotations, times, link.
func checkNotifications(t *testing.T, p *pipeline, devices []string, ns []alertmanagertest.Notification, linkBase string) {
	t.Helper()
	records := map[string]alertView{}
	for _, d := range devices {
		var got struct {
			Alerts []alertView `json:"alerts"`
		}
		if code := getJSON(t, p.api.URL("/alerts?limit=1000&device_id="+url.QueryEscape(d)), &got); code != 200 {
			t.Fatalf("GET /alerts?device_id=%s = %d", d, code)
		}
		for _, a := range got.Alerts {
			records[a.ID] = a
		}
	}
	for _, n := range ns {
		if len(n.Alerts) != 1 {
			t.Errorf("notification %s with %d alerts, want one (one group per device and signal)", n.Status, len(n.Alerts))
			continue
		}
		a := n.Alerts[0]
		device := a.Labels["device_id"]
		rec, ok := records[a.Annotations["alert_id"]]
		if !ok || rec.DeviceID != device {
			t.Errorf("notification of alert %q (device %s): GET /alerts has no such alert", a.Annotations["alert_id"], device)
			continue
		}
		if n.Status == "resolved" && (rec.ClosedAt == nil || !a.EndsAt.Equal(time.UnixMilli(int64(math.Round(*rec.ClosedAt*1000))))) {
			t.Errorf("%s resolved with endsAt %v; alert %+v", device, a.EndsAt, rec)
		}
		wantLabels := map[string]string{"alertname": "PulseDeviceAnomaly", "device_id": device, "signal": "rps", "severity": a.Labels["severity"]}
		if fmt.Sprint(a.Labels) != fmt.Sprint(wantLabels) || (a.Labels["severity"] != "warning" && a.Labels["severity"] != "critical") {
			t.Errorf("labels %v", a.Labels)
		}
		link := linkBase + "/alerts?device_id=" + url.QueryEscape(device)
		if a.Annotations["alert_id"] != rec.ID || a.Annotations["link"] != link || a.GeneratorURL != link ||
			!near(a.Annotations["value"], rec.Value) || !strings.Contains(a.Annotations["summary"], device) ||
			!strings.Contains(a.Annotations["description"], "anomaly score") {
			t.Errorf("annotations %v (generatorURL %s) for alert %+v", a.Annotations, a.GeneratorURL, rec)
		}
		if want := time.UnixMilli(int64(math.Round(rec.OpenedAt * 1000))); !a.StartsAt.Equal(want) {
			t.Errorf("%s startsAt %v, want the opening event's time %v", device, a.StartsAt, want)
		}
	}
}

// near reports whether annotation s is v as people read it (six
// significant digits).
func near(s string, v float64) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && math.Abs(f-v) <= 1e-5*math.Abs(v)
}
