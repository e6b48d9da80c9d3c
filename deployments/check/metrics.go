package check

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// MetricKind is how a metric family is exposed.
type MetricKind int

// Metric kinds.
const (
	Counter MetricKind = iota
	Gauge
	Histogram
)

// ContractMetric is one metric the services promise to export (the lead's
// contract); Services lists which of ingest, analyzer, api export it.
type ContractMetric struct {
	Name     string
	Kind     MetricKind
	Services []string
}

var all3 = []string{"ingest", "analyzer", "api"}

// Contract is the list of Pulse metrics the dashboards and alerts may use.
var Contract = []ContractMetric{
	{"http_requests_total", Counter, all3},
	{"http_request_duration_seconds", Histogram, all3},
	{"current_rps", Gauge, all3},
	{"pulse_redis_errors_total", Counter, all3},
	{"pulse_redis_duration_seconds", Histogram, all3},
	{"process_cpu_seconds_total", Counter, all3},
	{"go_goroutines", Gauge, all3},

	{"pulse_events_accepted_total", Counter, []string{"ingest"}},
	{"pulse_events_rejected_total", Counter, []string{"ingest"}},
	{"pulse_batch_size", Histogram, []string{"ingest", "analyzer"}},
	{"pulse_ingest_backlog", Gauge, []string{"ingest"}},
	{"pulse_ingest_backpressure", Gauge, []string{"ingest"}},

	{"pulse_events_processed_total", Counter, []string{"analyzer"}},
	{"pulse_events_deadlettered_total", Counter, []string{"analyzer"}},
	{"pulse_events_duplicate_total", Counter, []string{"analyzer"}},
	{"anomalies_detected_total", Counter, []string{"analyzer"}},
	{"pulse_shard_lag", Gauge, []string{"analyzer"}},
	{"pulse_shard_pending", Gauge, []string{"analyzer"}},
	{"pulse_shard_healthy", Gauge, []string{"analyzer"}},
	{"pulse_shards_owned", Gauge, []string{"analyzer"}},
	{"pulse_end_to_end_latency_seconds", Histogram, []string{"analyzer"}},
	{"pulse_lease_lost_total", Counter, []string{"analyzer"}},
	{"pulse_alerts_opened_total", Counter, []string{"analyzer"}},
	// Named signals and tags beyond MAX_SIGNALS_PER_DEVICE and
	// MAX_FLEET_SIGNALS.
	{"pulse_signals_dropped_total", Counter, []string{"analyzer"}},
	{"pulse_tags_dropped_total", Counter, []string{"analyzer"}},
	// Delivery of device alerts (internal/notify), while ALERTMANAGER_URL
	// is set.
	{"pulse_alert_notifications_total", Counter, []string{"analyzer"}},
	{"pulse_alert_outbox_size", Gauge, []string{"analyzer"}},
	{"pulse_alert_notification_latency_seconds", Histogram, []string{"analyzer"}},

	{"rolling_average_rps", Gauge, []string{"api"}},
	{"pulse_fleet_events_processed", Gauge, []string{"api"}},
	{"pulse_fleet_anomalies", Gauge, []string{"api"}},
	{"pulse_alerts_open", Gauge, []string{"api"}},
}

// SeriesNames returns the sample names a family exposes in the text format.
func (m ContractMetric) SeriesNames() []string {
	if m.Kind == Histogram {
		return []string{m.Name + "_bucket", m.Name + "_sum", m.Name + "_count"}
	}
	return []string{m.Name}
}

// Exempt lists metric names used in rules or dashboards that Pulse's
// services do not export, with the reason. Only these may be absent from
// the services' /prometheus:
//   - up: synthesised by Prometheus for every target;
//   - redis_up: exported by the oliver006/redis_exporter sidecar of the
//     Redis StatefulSet (RedisDown), not by a Pulse service.
var Exempt = map[string]string{
	"up":       "synthesised by Prometheus for each scrape target",
	"redis_up": "exported by the redis_exporter sidecar (oliver006/redis_exporter), not by Pulse",
}

// KnownSeries maps every sample name of the contract to its metric.
func KnownSeries() map[string]ContractMetric {
	out := map[string]ContractMetric{}
	for _, m := range Contract {
		for _, s := range m.SeriesNames() {
			out[s] = m
		}
	}
	return out
}

// grafanaVars are Grafana's built-in interval variables, replaced by a
// duration so that the expression parses as PromQL.
var grafanaVars = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)

// ExpandGrafana substitutes Grafana's interval variables.
func ExpandGrafana(expr string) string {
	return grafanaVars.ReplaceAllString(expr, "1m")
}

// MetricNames parses expr as PromQL and returns the metric names it selects.
// A selector without a metric name is an error (it would match anything).
func MetricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var bad []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				bad = append(bad, vs.String())
			} else {
				seen[vs.Name] = true
			}
		}
		return nil
	})
	if len(bad) > 0 {
		return nil, fmt.Errorf("selector without a metric name: %s", strings.Join(bad, ", "))
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
