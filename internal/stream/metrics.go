package stream

import "github.com/prometheus/client_golang/prometheus"

// NewBatchSizes returns pulse_batch_size{stage}: ingest and the analyzers
// both report it, and one definition keeps its help and buckets the same
// in every service, as aggregation across them needs.
func NewBatchSizes() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pulse_batch_size",
		Help:    "Events per unit of work: per request and per Redis pipeline (ingest), per applied batch (analyzer).",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	}, []string{"stage"})
}
