package notify

import "github.com/prometheus/client_golang/prometheus"

// Results of pulse_alert_notifications_total, counted per alert (and per
// Alertmanager, except dropped).
const (
	ResultSent     = "sent"     // an alert change from the outbox accepted
	ResultResent   = "resent"   // an open alert's periodic re-send accepted
	ResultFailed   = "failed"   // an alert in a post that failed (it is retried)
	ResultRejected = "rejected" // refused by Alertmanager as invalid (400), or an unreadable record: not retried
	ResultDropped  = "dropped"  // removed by the outbox bound before every Alertmanager accepted it
)

var results = []string{ResultSent, ResultResent, ResultFailed, ResultRejected, ResultDropped}

type metrics struct {
	notifications *prometheus.CounterVec
	outboxSize    prometheus.Gauge
	latency       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_alert_notifications_total",
			Help: "Device alerts posted to Alertmanager, per Alertmanager, by result: sent, resent, failed (retried), rejected (invalid, not retried), dropped (outbox full).",
		}, []string{"result"}),
		outboxSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pulse_alert_outbox_size",
			Help: "Alert changes waiting in the outboxes of the shards this process delivers for.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pulse_alert_notification_latency_seconds",
			Help: "From an alert's opening or closing (its write to the outbox) to its acceptance by an Alertmanager.",
			// From a healthy loopback post to a long outage.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
	}
	for _, c := range []prometheus.Collector{m.notifications, m.outboxSize, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every result from zero, so that rate() and alert rules see them.
	for _, r := range results {
		m.notifications.WithLabelValues(r)
	}
	return m, nil
}
