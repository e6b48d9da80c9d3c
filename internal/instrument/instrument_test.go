package instrument

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Each constructor registers what it returns on the registry passed in,
// with the name, help, labels and buckets given.
func TestRegistersOnTheGivenRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	Counter(reg, "c_total", "A counter.").Add(2)
	CounterVec(reg, "cv_total", "A counter by reason.", "reason").WithLabelValues("x").Inc()
	Gauge(reg, "g", "A gauge.").Set(3)
	GaugeVec(reg, "gv", "A gauge by shard.", "shard").WithLabelValues("0").Set(5)
	GaugeFunc(reg, "gf", "A gauge read at scrape.", func() float64 { return 4 })
	Histogram(reg, "hp_seconds", "A histogram.", []float64{1}).Observe(2)
	HistogramVec(reg, "h_seconds", "A histogram by op.", []float64{1}, "op").WithLabelValues("get").Observe(0.5)

	want := `# HELP c_total A counter.
# TYPE c_total counter
c_total 2
# HELP cv_total A counter by reason.
# TYPE cv_total counter
cv_total{reason="x"} 1
# HELP g A gauge.
# TYPE g gauge
g 3
# HELP gf A gauge read at scrape.
# TYPE gf gauge
gf 4
# HELP gv A gauge by shard.
# TYPE gv gauge
gv{shard="0"} 5
# HELP h_seconds A histogram by op.
# TYPE h_seconds histogram
h_seconds_bucket{op="get",le="1"} 1
h_seconds_bucket{op="get",le="+Inf"} 1
h_seconds_sum{op="get"} 0.5
h_seconds_count{op="get"} 1
# HELP hp_seconds A histogram.
# TYPE hp_seconds histogram
hp_seconds_bucket{le="1"} 0
hp_seconds_bucket{le="+Inf"} 1
hp_seconds_sum 2
hp_seconds_count 1
`
	if got := exposition(t, reg); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
	if got := exposition(t, prometheus.DefaultGatherer); strings.Contains(got, "c_total") {
		t.Error("the default registry got the metrics")
	}
}

func exposition(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
