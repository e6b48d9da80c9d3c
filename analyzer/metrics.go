package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/instrument"
	"github.com/pulse-iot/pulse/internal/stream"
)

type analyzerMetrics struct {
	processed    prometheus.Counter
	duplicates   prometheus.Counter
	deadLettered *prometheus.CounterVec
	anomalies    *prometheus.CounterVec
	alertsOpened prometheus.Counter
	// Values of named signals and tags not tracked (MAX_SIGNALS_PER_DEVICE,
	// MAX_FLEET_SIGNALS): never labelled by name.
	signalsDropped *prometheus.CounterVec
	tagsDropped    prometheus.Counter
	lag            *prometheus.GaugeVec
	pending        *prometheus.GaugeVec
	healthy        *prometheus.GaugeVec
	shardsOwned    prometheus.Gauge
	leaseLost      prometheus.Counter
	batchSize      prometheus.Observer
	applyDuration  prometheus.Observer
	endToEnd       prometheus.Observer
}

func newAnalyzerMetrics(reg prometheus.Registerer) *analyzerMetrics {
	batch := stream.NewBatchSizes()
	reg.MustRegister(batch)
	m := &analyzerMetrics{
		processed:  instrument.Counter(reg, "pulse_events_processed_total", "Events analyzed and written."),
		duplicates: instrument.Counter(reg, "pulse_events_duplicate_total", "Redelivered events skipped because they were already applied."),
		deadLettered: instrument.CounterVec(reg, "pulse_events_deadlettered_total",
			"Entries moved to the dead-letter stream, by reason.", "reason"),
		anomalies: instrument.CounterVec(reg, "anomalies_detected_total", "Anomalous values detected, by signal: rps, cpu, and named for all named signals together.", "signal"),
		signalsDropped: instrument.CounterVec(reg, "pulse_signals_dropped_total",
			"Values of named signals not analysed: the device tracks MAX_SIGNALS_PER_DEVICE signals already (device_limit) or the fleet MAX_FLEET_SIGNALS names (fleet_limit).", "reason"),
		tagsDropped: instrument.Counter(reg, "pulse_tags_dropped_total",
			"Device tags not kept: their key already has MAX_FLEET_SIGNALS values fleet-wide, or the fleet MAX_FLEET_SIGNALS keys."),
		alertsOpened: instrument.Counter(reg, "pulse_alerts_opened_total",
			"Device alerts this analyzer opened (written with their batch; an alert opens exactly once whatever the analyzers). Open alerts: the api's pulse_alerts_open."),
		lag: instrument.GaugeVec(reg, "pulse_shard_lag",
			"Entries of a shard's stream not yet delivered to the analyzers (owned shards only); NaN while it cannot be measured (no consumer group, Redis errors).", "shard"),
		pending: instrument.GaugeVec(reg, "pulse_shard_pending",
			"Entries of a shard delivered but not yet acknowledged (owned shards only); NaN while it cannot be measured.", "shard"),
		healthy: instrument.GaugeVec(reg, "pulse_shard_healthy",
			"1 while this analyzer processes the shard, 0 while it cannot (stream unreadable, consumer group not recreated, writes failing); owned shards only.", "shard"),
		shardsOwned: instrument.Gauge(reg, "pulse_shards_owned", "Shards this analyzer holds the lease of."),
		leaseLost:   instrument.Counter(reg, "pulse_lease_lost_total", "Shard leases this analyzer lost before handing them over."),
		batchSize:   batch.WithLabelValues("analyzer"),
		applyDuration: instrument.Histogram(reg, "pulse_analyzer_batch_duration_seconds", "Time to load, apply and write one batch.",
			prometheus.ExponentialBuckets(0.0005, 2, 14)),
		endToEnd: instrument.Histogram(reg, "pulse_end_to_end_latency_seconds", "Time from ingest receiving an event to its analysis being written.",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}),
	}
	for _, s := range []string{analysis.SignalRPS, analysis.SignalCPU, analysis.SignalNamed} {
		m.anomalies.WithLabelValues(s)
	}
	for _, r := range []string{analysis.DropDeviceLimit, analysis.DropFleetLimit} {
		m.signalsDropped.WithLabelValues(r)
	}
	for _, r := range []string{"malformed", "missing"} {
		m.deadLettered.WithLabelValues(r)
	}
	return m
}

// forgetShard drops the per-shard series of a shard no longer owned, so
// that two analyzers never report the same shard.
func (m *analyzerMetrics) forgetShard(s int) {
	m.lag.DeleteLabelValues(itoa(s))
	m.pending.DeleteLabelValues(itoa(s))
	m.healthy.DeleteLabelValues(itoa(s))
}
