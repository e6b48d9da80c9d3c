package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulse-iot/pulse/internal/detector"
)

// fleetCollector reads the fleet's figures from Redis at scrape time, so
// every api replica reports the same values and none is stale.
type fleetCollector struct {
	store   resultStore
	timeout time.Duration

	rollingAverage, processed, anomalies, alertsOpen *prometheus.Desc
}

func newFleetCollector(store resultStore, timeout time.Duration) *fleetCollector {
	return &fleetCollector{
		store: store, timeout: timeout,
		rollingAverage: prometheus.NewDesc("rolling_average_rps", "Mean rps of the fleet's newest WINDOW_SIZE analyzed events.", nil, nil),
		processed:      prometheus.NewDesc("pulse_fleet_events_processed", "Events analyzed, all devices.", nil, nil),
		anomalies:      prometheus.NewDesc("pulse_fleet_anomalies", "Anomalous events, all devices.", nil, nil),
		alertsOpen:     prometheus.NewDesc("pulse_alerts_open", "Device alerts open now, all devices and signals.", nil, nil),
	}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rollingAverage
	ch <- c.processed
	ch <- c.anomalies
	ch <- c.alertsOpen
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	f, err := c.store.Fleet(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.rollingAverage, err)
		return
	}
	w := detector.NewWindow(max(len(f.Values), 1))
	w.Reset(f.Values)
	mean, _ := w.MeanStdDev()
	ch <- prometheus.MustNewConstMetric(c.rollingAverage, prometheus.GaugeValue, mean)
	ch <- prometheus.MustNewConstMetric(c.processed, prometheus.GaugeValue, float64(f.Processed))
	ch <- prometheus.MustNewConstMetric(c.anomalies, prometheus.GaugeValue, float64(f.Anomalies))
	ch <- prometheus.MustNewConstMetric(c.alertsOpen, prometheus.GaugeValue, float64(f.AlertsOpen))
}
