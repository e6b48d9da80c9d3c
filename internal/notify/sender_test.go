package notify

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pulse-iot/pulse/internal/alertmanagertest"
	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/redistest"
)

// Every test here posts to real Alertmanagers (Debian's
// prometheus-alertmanager) whose webhook receiver the test serves.

const waitLong = 15 * time.Second

// testSender is a Sender and its registry.
type testSender struct {
	*Sender
	reg *prometheus.Registry
}

// fastOptions retry and poll quickly, so that tests are short.
func fastOptions(urls ...string) Options {
	return Options{URLs: urls, Resend: time.Minute, Timeout: 2 * time.Second, Poll: 100 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
}

func newSender(t testing.TB, rdb redis.Cmdable, opt Options) *testSender {
	t.Helper()
	return newSenderLog(t, rdb, opt, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

func newSenderLog(t testing.TB, rdb redis.Cmdable, opt Options, log *zap.Logger) *testSender {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(rdb, opt, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	return &testSender{s, reg}
}

// run runs the shard's delivery until the returned stop is called (or the
// test ends); stop waits for Run to return.
func (s *testSender) run(t testing.TB, keys Keys) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, keys) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of its context's end")
		}
	}
	t.Cleanup(stop)
	return stop
}

// value returns a metric's value (a counter's with result=label, or the
// histogram's sample count).
func (s *testSender) value(t testing.TB, name, result string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result != "" && !hasResult(m.GetLabel(), result) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s{result=%q}", name, result)
	return 0
}

func hasResult[L interface {
	GetName() string
	GetValue() string
}](labels []L, result string) bool {
	for _, l := range labels {
		if l.GetName() == "result" && l.GetValue() == result {
			return true
		}
	}
	return false
}

func enqueue(t testing.TB, rdb redis.Scripter, keys Keys, alerts ...Alert) {
	t.Helper()
	if _, err := Enqueue(context.Background(), rdb, keys, 1000, alerts...); err != nil {
		t.Fatal(err)
	}
}

func outboxLen(t testing.TB, rdb *redis.Client, keys Keys) int64 {
	t.Helper()
	n, err := rdb.XLen(context.Background(), keys.Outbox).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// groupKey is the group key of a device's alerts under the test route
// (group_by alertname, device_id, signal).
func groupKey(device, signal string) string {
	return `{}:{alertname="PulseDeviceAnomaly", device_id="` + device + `", signal="` + signal + `"}`
}

// count returns how many notifications of status ("" for any) the group
// got, and how many alerts they carried.
func count(ns []alertmanagertest.Notification, key, status string) int {
	n := 0
	for _, x := range ns {
		if x.GroupKey == key && (status == "" || x.Status == status) {
			n++
		}
	}
	return n
}

func has(key, status string, n int) func([]alertmanagertest.Notification) bool {
	return func(ns []alertmanagertest.Notification) bool { return count(ns, key, status) >= n }
}

// An opened alert reaches the webhook as Prometheus' alerts do, with the
// labels and annotations of docs/ALERTING.md; its closing resolves it.
func TestDeliverOpenAndClose(t *testing.T) {
	rdb, keys := testKeys(t)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})
	opt := fastOptions(am.URL)
	opt.LinkBase = "https://pulse.example.com/api"
	s := newSender(t, rdb, opt)
	s.run(t, keys)

	a := alertOf("01J0ALERT1", "sensor-42", StateOpen)
	a.OpenedAt = float64(time.Now().Add(-2*time.Second).UnixMilli()) / 1000
	a.Value, a.ZScore, a.Score, a.Expected = 512.5, 8.25, 0.997, Band{90, 110}
	a.Tags = map[string]string{"site": "berlin", "rack.id": "r7"}
	enqueue(t, rdb, keys, a)
	s.Wake()
	key := groupKey("sensor-42", "rps")
	ns := hook.WaitFor(t, waitLong, "the firing notification", has(key, "firing", 1))
	n := ns[0]
	if testing.Verbose() {
		t.Logf("firing notification:\n%s", n.Raw)
	}
	if len(n.Alerts) != 1 || n.Receiver != "test" || n.Version != "4" {
		t.Fatalf("notification = %+v", n)
	}
	got := n.Alerts[0]
	wantLabels := map[string]string{"alertname": "PulseDeviceAnomaly", "device_id": "sensor-42", "signal": "rps",
		"severity": "critical", "site": "berlin", "rack_id": "r7"}
	if !equalMaps(got.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", got.Labels, wantLabels)
	}
	link := "https://pulse.example.com/api/alerts?device_id=sensor-42"
	wantAnn := map[string]string{
		"summary":     "Device sensor-42: unusual rps (512.5, expected 90 to 110)",
		"description": "rps of device sensor-42 was 512.5 at " + unixTime(a.OpenedAt).Format(time.RFC3339) + ", outside the expected band 90 to 110 (z-score 8.25, anomaly score 0.997).",
		"alert_id":    "01J0ALERT1", "score": "0.997", "z_score": "8.25", "value": "512.5",
		"expected_low": "90", "expected_high": "110", "events": "1", "link": link,
	}
	if !equalMaps(got.Annotations, wantAnn) {
		t.Errorf("annotations = %v, want %v", got.Annotations, wantAnn)
	}
	if got.Status != "firing" || got.GeneratorURL != link || !got.StartsAt.Equal(unixTime(a.OpenedAt)) {
		t.Errorf("status %s, generatorURL %s, startsAt %v; want firing, %s, %v", got.Status, got.GeneratorURL, got.StartsAt, link, unixTime(a.OpenedAt))
	}
	// Alertmanager reports a firing alert's endsAt as 0001-01-01 in
	// webhooks; the API shows the one we sent: 4 resends ahead.
	if al := am.Alerts(t); len(al) != 1 || time.Until(al[0].EndsAt) < 3*time.Minute || time.Until(al[0].EndsAt) > 4*time.Minute {
		t.Errorf("Alertmanager's alerts: %+v, want one ending about 4 minutes ahead", al)
	}

	closed := a
	closed.State, closed.Events = StateClosed, 9
	c := float64(time.Now().Add(-time.Second).UnixMilli()) / 1000
	closed.ClosedAt = &c
	enqueue(t, rdb, keys, closed)
	s.Wake()
	ns = hook.WaitFor(t, waitLong, "the resolved notification", has(key, "resolved", 1))
	for _, n := range ns {
		if n.Status != "resolved" {
			continue
		}
		if testing.Verbose() {
			t.Logf("resolved notification:\n%s", n.Raw)
		}
		r := n.Alerts[0]
		if r.Status != "resolved" || !r.EndsAt.Equal(unixTime(c)) || !strings.Contains(r.Annotations["description"], "after 9 events") {
			t.Errorf("resolved alert = %+v, want resolved at %v after 9 events", r, unixTime(c))
		}
	}
	if f := count(ns, key, "firing"); f != 1 {
		t.Errorf("%d firing notifications, want 1", f)
	}
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })
	poll.True(t, waitLong, "the outbox gauge at 0", func() bool { return s.value(t, "pulse_alert_outbox_size", "") == 0 })
	if v := s.value(t, "pulse_alert_notifications_total", ResultSent); v != 2 {
		t.Errorf("sent = %v, want 2", v)
	}
	if v := s.value(t, "pulse_alert_notification_latency_seconds", ""); v != 2 {
		t.Errorf("latency observations = %v, want 2", v)
	}
	if v := s.value(t, "pulse_alert_notifications_total", ResultFailed); v != 0 {
		t.Errorf("failed = %v, want 0", v)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A takeover posts again what the dead owner posted but had not
// recorded, and re-sends the open alerts: Alertmanager takes them as the
// same alerts, so each group is notified once.
func TestTakeoverDuplicatesNotifyOnce(t *testing.T) {
	rdb, keys := testKeys(t)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})

	a, b := alertOf("A", "d1", StateOpen), alertOf("B", "d2", StateOpen)
	enqueue(t, rdb, keys, a, b)
	// The first owner posts the outbox and dies before recording it.
	dead := newSender(t, rdb, fastOptions(am.URL))
	if rejected, err := dead.post(context.Background(), &dead.targets[0], []Alert{a, b}); err != nil || rejected {
		t.Fatalf("post: rejected %v, %v", rejected, err)
	}
	hook.WaitFor(t, waitLong, "both groups notified", func(ns []alertmanagertest.Notification) bool {
		return count(ns, groupKey("d1", "rps"), "") == 1 && count(ns, groupKey("d2", "rps"), "") == 1
	})

	// The new owner finds both in the outbox and both open.
	heir := newSender(t, rdb, fastOptions(am.URL))
	heir.run(t, keys)
	poll.True(t, waitLong, "the outbox posted again and the open alerts re-sent", func() bool {
		return heir.value(t, "pulse_alert_notifications_total", ResultSent) == 2 &&
			heir.value(t, "pulse_alert_notifications_total", ResultResent) == 2
	})
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })
	// A new alert after the takeover is notified as usual.
	enqueue(t, rdb, keys, alertOf("C", "d3", StateOpen))
	heir.Wake()
	hook.WaitFor(t, waitLong, "the new alert", has(groupKey("d3", "rps"), "firing", 1))
	// Several group intervals: a duplicate would have been notified.
	time.Sleep(time.Second)
	ns := hook.Notifications()
	for _, d := range []string{"d1", "d2", "d3"} {
		if n := count(ns, groupKey(d, "rps"), ""); n != 1 {
			t.Errorf("group of %s notified %d times, want once", d, n)
		}
	}
}

// With Alertmanager down the outbox holds the alerts; when it is back on
// the same port, they are delivered.
func TestAlertmanagerDownThenBack(t *testing.T) {
	rdb, keys := testKeys(t)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})
	s := newSender(t, rdb, fastOptions(am.URL))
	s.run(t, keys)
	am.Kill()

	for i := 0; i < 3; i++ {
		enqueue(t, rdb, keys, alertOf("A"+strconv.Itoa(i), "d"+strconv.Itoa(i), StateOpen))
	}
	s.Wake()
	poll.True(t, waitLong, "failed posts", func() bool { return s.value(t, "pulse_alert_notifications_total", ResultFailed) >= 6 })
	if n := outboxLen(t, rdb, keys); n != 3 {
		t.Errorf("outbox holds %d alerts while Alertmanager is down, want 3", n)
	}
	poll.True(t, waitLong, "the outbox gauge at 3", func() bool { return s.value(t, "pulse_alert_outbox_size", "") == 3 })

	am.Restart(t)
	hook.WaitFor(t, waitLong, "all three alerts", func(ns []alertmanagertest.Notification) bool {
		for i := 0; i < 3; i++ {
			if count(ns, groupKey("d"+strconv.Itoa(i), "rps"), "firing") != 1 {
				return false
			}
		}
		return true
	})
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })
	if v := s.value(t, "pulse_alert_notifications_total", ResultSent); v != 3 {
		t.Errorf("sent = %v, want 3", v)
	}
}

// Every configured Alertmanager receives every alert; one that is down
// does not hold back the other, and catches up when it is back.
func TestTwoAlertmanagers(t *testing.T) {
	rdb, keys := testKeys(t)
	hooks := []*alertmanagertest.Receiver{alertmanagertest.NewReceiver(t), alertmanagertest.NewReceiver(t)}
	ams := []*alertmanagertest.Alertmanager{
		alertmanagertest.Start(t, hooks[0].URL, alertmanagertest.Config{}),
		alertmanagertest.Start(t, hooks[1].URL, alertmanagertest.Config{}),
	}
	s := newSender(t, rdb, fastOptions(ams[0].URL, ams[1].URL))
	s.run(t, keys)

	enqueue(t, rdb, keys, alertOf("A", "d1", StateOpen), alertOf("B", "d2", StateOpen))
	s.Wake()
	for i, h := range hooks {
		h.WaitFor(t, waitLong, "both alerts at Alertmanager "+strconv.Itoa(i), func(ns []alertmanagertest.Notification) bool {
			return count(ns, groupKey("d1", "rps"), "firing") == 1 && count(ns, groupKey("d2", "rps"), "firing") == 1
		})
	}
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })

	ams[1].Kill()
	enqueue(t, rdb, keys, alertOf("C", "d3", StateOpen))
	s.Wake()
	hooks[0].WaitFor(t, waitLong, "C at the live Alertmanager", has(groupKey("d3", "rps"), "firing", 1))
	poll.True(t, waitLong, "failed posts to the dead one", func() bool { return s.value(t, "pulse_alert_notifications_total", ResultFailed) >= 2 })
	if n := outboxLen(t, rdb, keys); n != 1 {
		t.Errorf("outbox holds %d alerts while one Alertmanager has not accepted C, want 1", n)
	}
	ams[1].Restart(t)
	hooks[1].WaitFor(t, waitLong, "C at the restarted Alertmanager", has(groupKey("d3", "rps"), "firing", 1))
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })
}

// The bound drops the oldest alerts while nothing delivers; the sender
// counts them, and delivers the rest.
func TestOutboxBoundDropsOldest(t *testing.T) {
	rdb, keys := testKeys(t)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})
	for i := 0; i < 5; i++ {
		if _, err := Enqueue(context.Background(), rdb, keys, 3, alertOf("A"+strconv.Itoa(i), "d"+strconv.Itoa(i), StateOpen)); err != nil {
			t.Fatal(err)
		}
	}
	// Only what the bound removed: the open-alerts hash still has all 5,
	// which re-sends would post; clear it to see the outbox alone.
	rdb.Del(context.Background(), keys.Open)
	s := newSender(t, rdb, fastOptions(am.URL))
	s.run(t, keys)
	poll.True(t, waitLong, "2 dropped counted", func() bool { return s.value(t, "pulse_alert_notifications_total", ResultDropped) == 2 })
	hook.WaitFor(t, waitLong, "the newest 3", func(ns []alertmanagertest.Notification) bool {
		return count(ns, groupKey("d2", "rps"), "") == 1 && count(ns, groupKey("d3", "rps"), "") == 1 && count(ns, groupKey("d4", "rps"), "") == 1
	})
	time.Sleep(500 * time.Millisecond)
	ns := hook.Notifications()
	if count(ns, groupKey("d0", "rps"), "")+count(ns, groupKey("d1", "rps"), "") != 0 {
		t.Errorf("dropped alerts were delivered: %d notifications", len(ns))
	}
	if v := s.value(t, "pulse_alert_notifications_total", ResultSent); v != 3 {
		t.Errorf("sent = %v, want 3", v)
	}
}

// Re-sends keep an open alert firing past its endsAt; when they stop (the
// analyzer died and nobody took over), Alertmanager resolves it after 4
// re-send intervals.
func TestResendKeepsAlertFiring(t *testing.T) {
	rdb, keys := testKeys(t)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})
	opt := fastOptions(am.URL)
	opt.Resend = 500 * time.Millisecond // endsAt 2s ahead
	s := newSender(t, rdb, opt)
	stop := s.run(t, keys)
	enqueue(t, rdb, keys, alertOf("A", "d1", StateOpen))
	s.Wake()
	key := groupKey("d1", "rps")
	hook.WaitFor(t, waitLong, "the firing notification", has(key, "firing", 1))
	time.Sleep(4 * time.Second) // twice the endsAt of one post
	if n := count(hook.Notifications(), key, "resolved"); n != 0 {
		t.Fatalf("resolved while re-sent (%d notifications)", n)
	}
	if al := am.Alerts(t); len(al) != 1 || al[0].Status.State != "active" {
		t.Errorf("Alertmanager's alerts = %+v, want A active", al)
	}
	if v := s.value(t, "pulse_alert_notifications_total", ResultResent); v < 4 {
		t.Errorf("resent = %v, want about 8", v)
	}
	stop()
	stoppedAt := time.Now()
	// Within waitLong, not the 4 minutes of the default re-send.
	hook.WaitFor(t, waitLong, "resolved once re-sends stop", has(key, "resolved", 1))
	t.Logf("resolved %v after the re-sends stopped (endsAt was at most 2s ahead)", time.Since(stoppedAt).Round(time.Millisecond))
}

// A misconfigured URL (Alertmanager answers 404) keeps the alerts in the
// outbox and counts failed posts; an unreadable record is skipped and
// counted instead of blocking the outbox.
func TestFailuresCounted(t *testing.T) {
	rdb, keys := testKeys(t)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})

	wrong := newSender(t, rdb, fastOptions(am.URL+"/no-such-prefix"))
	stop := wrong.run(t, keys)
	enqueue(t, rdb, keys, alertOf("A", "d1", StateOpen))
	wrong.Wake()
	poll.True(t, waitLong, "failed posts", func() bool { return wrong.value(t, "pulse_alert_notifications_total", ResultFailed) >= 3 })
	stop()
	if n := outboxLen(t, rdb, keys); n != 1 {
		t.Errorf("outbox holds %d alerts after failed posts, want 1", n)
	}

	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keys.Outbox, Values: []string{"a", "{not json"}})
	enqueue(t, rdb, keys, alertOf("B", "d2", StateOpen))
	s := newSender(t, rdb, fastOptions(am.URL))
	s.run(t, keys)
	hook.WaitFor(t, waitLong, "A and B past the unreadable record", func(ns []alertmanagertest.Notification) bool {
		return count(ns, groupKey("d1", "rps"), "firing") == 1 && count(ns, groupKey("d2", "rps"), "firing") == 1
	})
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })
	if v := s.value(t, "pulse_alert_notifications_total", ResultRejected); v != 1 {
		t.Errorf("rejected = %v, want 1", v)
	}
}

// Delivery outlives a Redis outage: the sender retries, and delivers what
// is written once Redis is back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.StartTest(t)
	rdb := srv.Client()
	t.Cleanup(func() { rdb.Close() })
	keys := KeysFor("pulse", 1)
	hook := alertmanagertest.NewReceiver(t)
	am := alertmanagertest.Start(t, hook.URL, alertmanagertest.Config{})
	core, logs := observer.New(zap.WarnLevel)
	s := newSenderLog(t, rdb, fastOptions(am.URL), zap.New(core))
	s.run(t, keys)
	enqueue(t, rdb, keys, alertOf("A", "d1", StateOpen))
	s.Wake()
	hook.WaitFor(t, waitLong, "A", has(groupKey("d1", "rps"), "firing", 1))

	srv.Kill()
	poll.True(t, waitLong, "the outage seen", func() bool { return logs.FilterMessage("read alert outbox").Len() > 0 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	enqueue(t, rdb, keys, alertOf("B", "d2", StateOpen))
	s.Wake()
	hook.WaitFor(t, waitLong, "B after Redis came back", has(groupKey("d2", "rps"), "firing", 1))
	poll.True(t, waitLong, "an empty outbox", func() bool { return outboxLen(t, rdb, keys) == 0 })
}
