package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulse-iot/pulse/internal/stream"
)

type analyzerMetrics struct {
	processed     prometheus.Counter
	duplicates    prometheus.Counter
	deadLettered  *prometheus.CounterVec
	anomalies     *prometheus.CounterVec
	alertsOpened  prometheus.Counter
	lag           *prometheus.GaugeVec
	pending       *prometheus.GaugeVec
	healthy       *prometheus.GaugeVec
	shardsOwned   prometheus.Gauge
	leaseLost     prometheus.Counter
	batchSize     prometheus.Observer
	applyDuration prometheus.Observer
	endToEnd      prometheus.Observer
}

func newAnalyzerMetrics(reg prometheus.Registerer) *analyzerMetrics {
	batch := stream.NewBatchSizes()
	apply := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pulse_analyzer_batch_duration_seconds",
		Help:    "Time to load, apply and write one batch.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	e2e := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pulse_end_to_end_latency_seconds",
		Help:    "Time from ingest receiving an event to its analysis being written.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	m := &analyzerMetrics{
		processed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_events_processed_total",
			Help: "Events analyzed and written.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_events_duplicate_total",
			Help: "Redelivered events skipped because they were already applied.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_events_deadlettered_total",
			Help: "Entries moved to the dead-letter stream, by reason.",
		}, []string{"reason"}),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "anomalies_detected_total",
			Help: "Anomalous values detected, by signal.",
		}, []string{"signal"}),
		alertsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_alerts_opened_total",
			Help: "Device alerts this analyzer opened (written with their batch; an alert opens exactly once whatever the analyzers). Open alerts: the api's pulse_alerts_open.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_shard_lag",
			Help: "Entries of a shard's stream not yet delivered to the analyzers (owned shards only); NaN while it cannot be measured (no consumer group, Redis errors).",
		}, []string{"shard"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_shard_pending",
			Help: "Entries of a shard delivered but not yet acknowledged (owned shards only); NaN while it cannot be measured.",
		}, []string{"shard"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_shard_healthy",
			Help: "1 while this analyzer processes the shard, 0 while it cannot (stream unreadable, consumer group not recreated, writes failing); owned shards only.",
		}, []string{"shard"}),
		shardsOwned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pulse_shards_owned",
			Help: "Shards this analyzer holds the lease of.",
		}),
		leaseLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_lease_lost_total",
			Help: "Shard leases this analyzer lost before handing them over.",
		}),
		batchSize:     batch.WithLabelValues("analyzer"),
		applyDuration: apply,
		endToEnd:      e2e,
	}
	for _, s := range []string{"rps", "cpu"} {
		m.anomalies.WithLabelValues(s)
	}
	for _, r := range []string{"malformed", "missing"} {
		m.deadLettered.WithLabelValues(r)
	}
	reg.MustRegister(m.processed, m.duplicates, m.deadLettered, m.anomalies, m.alertsOpened, m.lag, m.pending,
		m.healthy, m.shardsOwned, m.leaseLost, batch, apply, e2e)
	return m
}

// forgetShard drops the per-shard series of a shard no longer owned, so
// that two analyzers never report the same shard.
func (m *analyzerMetrics) forgetShard(s int) {
	m.lag.DeleteLabelValues(itoa(s))
	m.pending.DeleteLabelValues(itoa(s))
	m.healthy.DeleteLabelValues(itoa(s))
}
