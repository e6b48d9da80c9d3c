package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulse-iot/pulse/internal/instrument"
)

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

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		notifications: instrument.CounterVec(reg, "pulse_alert_notifications_total",
			"Device alerts posted to Alertmanager, per Alertmanager, by result: sent, resent, failed (retried), rejected (invalid, not retried), dropped (outbox full).", "result"),
		outboxSize: instrument.Gauge(reg, "pulse_alert_outbox_size",
			"Alert changes waiting in the outboxes of the shards this process delivers for."),
		latency: instrument.Histogram(reg, "pulse_alert_notification_latency_seconds",
			"From an alert's opening or closing (its write to the outbox) to its acceptance by an Alertmanager.",
			// From a healthy loopback post to a long outage.
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}),
	}
	// Every result from zero, so that rate() and alert rules see them.
	for _, r := range results {
		m.notifications.WithLabelValues(r)
	}
	return m
}
