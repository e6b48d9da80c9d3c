package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulse-iot/pulse/internal/instrument"
	"github.com/pulse-iot/pulse/internal/stream"
)

type ingestMetrics struct {
	accepted     prometheus.Counter
	rejected     *prometheus.CounterVec
	requestSize  prometheus.Observer
	pipelineSize prometheus.Observer
}

func newIngestMetrics(reg prometheus.Registerer) *ingestMetrics {
	batch := stream.NewBatchSizes()
	m := &ingestMetrics{
		accepted: instrument.Counter(reg, "pulse_events_accepted_total", "Events written to Redis and acknowledged with 202."),
		rejected: instrument.CounterVec(reg, "pulse_events_rejected_total",
			"Requests refused, by reason (invalid, too_large, unsupported_media, timeout, unavailable, backpressure).", "reason"),
		requestSize:  batch.WithLabelValues("ingest_request"),
		pipelineSize: batch.WithLabelValues("ingest_pipeline"),
	}
	for _, r := range []string{reasonInvalid, reasonTooLarge, reasonUnsupported, reasonTimeout, reasonUnavailable, reasonBackpressure} {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(batch)
	return m
}
