//go:build unix

package check

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/score"
)

// TestEndToEnd builds the three services, runs them against a private
// redis-server on loopback, and checks, one subtest per concern, that:
//   - pipeline: traffic is accepted, processed (a malformed entry
//     dead-lettered) and answered by the api, and three spikes are found;
//   - prometheus: a real Prometheus, the deployed release (see Tool),
//     scrapes the three with all targets up, the pipeline metrics have
//     values, every alert, dashboard and KEDA expression evaluates, the
//     KEDA query returns one sample, and every alert rule is healthy;
//   - redis outage: with Redis gone, /health stays 200 while /ready and
//     POST answer 503 (so liveness never restarts pods during an outage);
//   - recovery: with Redis back, every service is ready again by itself;
//   - metric names: each service exports, on /prometheus, every metric of
//     the contract it owns, and every metric the alerts, dashboards and
//     KEDA trigger use (the one exemption: redis_up, which comes from the
//     redis_exporter sidecar, not from Pulse; `up` is checked in
//     Prometheus itself);
//   - alert delivery: the analyzer, given ALERTMANAGER_URL and
//     ALERT_LINK_BASE as the deployment sets them, posts a device alert to
//     Alertmanager's API (a stand-in served by the test: internal/notify
//     tests against real Alertmanagers).
//
// The subtests run in order on the same processes.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	redisBin := NeedBinary(t, "redis-server", HintRedis)
	promBin, _ := deployedTool(t, Prometheus)
	e := startE2E(t, redisBin)
	exprs := monitoringExprs(t)

	t.Run("pipeline", e.pipeline)
	t.Run("prometheus", func(t *testing.T) { e.prometheus(t, promBin, exprs) })
	t.Run("redis outage", e.redisOutage)
	t.Run("recovery", e.recovery)
	t.Run("metric names", func(t *testing.T) { e.metricNames(t, exprs) })
	t.Run("alert delivery", e.alertDelivery)
}

// e2e is the running stack of TestEndToEnd and what its subtests learn.
type e2e struct {
	logs, redisBin      string
	redisPort           int
	redisAddr, password string
	redis               *proctest.Proc
	prefix              string
	shards              int
	addr                map[string]string // service -> host:port
	accepted            int               // events ingest accepted
	scrapes             map[string]promtext.Metrics
	am                  *stubAlertmanager
}

// startE2E starts a password-protected Redis, like the cluster's, and the
// three services, and waits until each is ready.
func startE2E(t *testing.T, redisBin string) *e2e {
	bins := buildServices(t, repoRoot(t))
	port, err := proctest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{
		logs: t.TempDir(), redisBin: redisBin, redisPort: port,
		password: fmt.Sprintf("e2e-%d", time.Now().UnixNano()),
		prefix:   fmt.Sprintf("e2e%d", time.Now().UnixNano()%1_000_000),
		shards:   4, addr: map[string]string{}, scrapes: map[string]promtext.Metrics{},
	}
	e.am = startStubAlertmanager(t)
	e.redis = redisProc(redisBin, e.logs, "redis", port, e.password, "--save", "", "--appendonly", "no", "--dir", e.logs)
	e.redisAddr = e.redis.Addr
	e.redis.StartTest(t, syscall.SIGTERM)
	for _, svc := range PulseServices {
		env := []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"REDIS_ADDR=" + e.redisAddr, "REDIS_PASSWORD=" + e.password,
			"KEY_PREFIX=" + e.prefix, "SHARDS=" + strconv.Itoa(e.shards), "LOG_LEVEL=warn",
		}
		if svc == config.Analyzer {
			env = append(env, "CONSUMER_NAME=e2e-analyzer-1", "LEASE_TTL=2s",
				"ALERTMANAGER_URL="+e.am.URL, "ALERT_LINK_BASE=http://pulse.local")
		}
		p, err := proctest.Service(filepath.Dir(bins[svc]), svc, svc, env...)
		if err != nil {
			t.Fatal(err)
		}
		p.OnlyEnv, p.Group, p.Log = true, true, filepath.Join(e.logs, svc+".log")
		p.ReadyWithin = 20 * time.Second
		p.Ready = func(context.Context) error {
			if code, body, err := httpGet(p.URL("/health")); err != nil || code != 200 || !strings.Contains(body, `"healthy"`) {
				return fmt.Errorf("/health: %d %q %v", code, body, err)
			}
			if code, body, err := httpGet(p.URL("/ready")); err != nil || code != 200 {
				return fmt.Errorf("/ready: %d %q %v", code, body, err)
			}
			return nil
		}
		p.StartTest(t, syscall.SIGTERM)
		e.addr[svc] = p.Addr
	}
	return e
}

// redisProc is redis-server with args on a loopback port, behind a
// password, ready once it answers PING; its log is dir/name.log.
func redisProc(bin, dir, name string, port int, password string, args ...string) *proctest.Proc {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return &proctest.Proc{
		Name: name,
		Argv: append(append([]string{bin}, args...), "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--requirepass", password),
		Addr: addr, Log: filepath.Join(dir, name+".log"), Group: true,
		ReadyWithin: 10 * time.Second,
		Ready: func(context.Context) error {
			r, err := respDo(addr, password, "PING")
			if err == nil && r != "PONG" {
				err = fmt.Errorf("PING: %q", r)
			}
			return err
		},
	}
}

func (e *e2e) url(svc string) string { return "http://" + e.addr[svc] }

// post sends one POST /metrics and fails the test unless ingest answers want.
func (e *e2e) post(t *testing.T, body string, want int) {
	t.Helper()
	code, resp, err := httpPost(e.url(config.Ingest)+"/metrics", "application/json", body)
	if err != nil || code != want {
		t.Fatalf("POST /metrics %s: %d %q %v, want %d", body, code, resp, err, want)
	}
	if code == http.StatusAccepted {
		e.accepted++
	}
}

// addScrapes adds each service's /prometheus samples to e.scrapes.
func (e *e2e) addScrapes(t *testing.T) {
	t.Helper()
	for _, svc := range PulseServices {
		m, err := scrape(e.url(svc))
		if err != nil {
			t.Fatal(err)
		}
		e.scrapes[svc] = append(e.scrapes[svc], m...)
	}
}

// monitoringExprs returns every PromQL expression of the alerts, the
// dashboards and the KEDA trigger.
func monitoringExprs(t *testing.T) []PromQLExpr {
	t.Helper()
	rf, err := ParseRules([]byte(mustRead(t, filepath.Join(promDir(t), "alerts.yml"))))
	if err != nil {
		t.Fatal(err)
	}
	exprs := RuleExprs(rf)
	dashDir := filepath.Join(repoRoot(t), "deployments", "k8s", "base", "monitoring", "grafana", "dashboards")
	files, _ := filepath.Glob(filepath.Join(dashDir, "*.json"))
	for _, f := range files {
		d, err := ParseDashboard([]byte(mustRead(t, f)))
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, DashboardExprs(d)...)
	}
	return append(exprs, kedaQueries(t)...)
}

// pipeline: three devices, a steady history, then one spike each; a
// malformed body is refused and an entry no ingest would write is
// dead-lettered.
func (e *e2e) pipeline(t *testing.T) {
	for i := 0; i < 20; i++ {
		for _, d := range []string{"d1", "d2", "d3"} {
			e.post(t, fmt.Sprintf(`{"device_id":%q,"cpu":%d,"rps":%d}`, d, 50+i%3, 100+i%5), http.StatusAccepted)
		}
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		e.post(t, fmt.Sprintf(`{"device_id":%q,"cpu":99.5,"rps":5000}`, d), http.StatusAccepted)
	}
	e.post(t, `{"device_id":"d1","cpu":`, http.StatusBadRequest)
	if _, err := respDo(e.redisAddr, e.password, "XADD", e.prefix+":metrics:{0}", "*", "d", "not a device!", "c", "x", "r", "1", "t", "1"); err != nil {
		t.Fatalf("XADD: %v", err)
	}

	waitFor(t, 30*time.Second, "the analyzer processed every accepted event", func() error {
		m, err := scrape(e.url(config.Analyzer))
		if err != nil {
			return err
		}
		if got := m.Sum("pulse_events_processed_total", nil); got < float64(e.accepted) {
			return fmt.Errorf("processed %v of %d", got, e.accepted)
		}
		if got := m.Sum("pulse_events_deadlettered_total", nil); got < 1 {
			return fmt.Errorf("dead-lettered %v, want 1", got)
		}
		if got := m.Sum("pulse_shards_owned", nil); got != float64(e.shards) {
			return fmt.Errorf("owns %v shards, want %d", got, e.shards)
		}
		return nil
	})
	for _, p := range []string{"/devices", "/anomalies", "/alerts", "/alerts?device_id=d1&state=open", "/analyze?device_id=d1", "/analyze"} {
		if code, body, err := httpGet(e.url(config.API) + p); err != nil || code != 200 {
			t.Errorf("GET %s: %d %q %v", p, code, body, err)
		}
	}
	e.addScrapes(t)
	if v := e.scrapes[config.Analyzer].Sum("anomalies_detected_total", nil); v < 3 {
		t.Errorf("anomalies_detected_total = %v after three spikes", v)
	}
}

// prometheus: a real Prometheus scrapes the three, with Pulse's alert
// rules loaded, under steady traffic.
func (e *e2e) prometheus(t *testing.T, promBin string, exprs []PromQLExpr) {
	ctx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // steady traffic while Prometheus watches; bounded.
		defer wg.Done()
		for i := 0; i < 3000 && ctx.Err() == nil; i++ {
			d := fmt.Sprintf("d%d", 1+i%3)
			httpPost(e.url(config.Ingest)+"/metrics", "application/json", fmt.Sprintf(`{"device_id":%q,"cpu":%d,"rps":%d}`, d, 50+i%3, 100+i%7))
			if i%10 == 0 {
				httpGet(e.url(config.API) + "/devices")
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopTraffic(); wg.Wait() })

	prom := startPrometheus(t, promBin, e.logs, e.addr)
	t.Run("targets up", func(t *testing.T) { promTargetsUp(t, prom) })
	t.Run("pipeline metrics", func(t *testing.T) { promPipelineMetrics(t, prom, e.shards) })
	t.Run("expressions evaluate", func(t *testing.T) { promEvaluates(t, prom, exprs) })
	t.Run("KEDA query has one sample", func(t *testing.T) {
		for _, q := range kedaQueries(t) {
			if _, err := promScalar(prom, q.Expr); err != nil {
				t.Errorf("%s query %q: %v", q.Where, q.Expr, err)
			}
		}
	})
	t.Run("alert rules healthy", func(t *testing.T) { promRulesHealthy(t, prom) })
}

func promTargetsUp(t *testing.T, prom string) {
	waitFor(t, 60*time.Second, "Prometheus has the three targets up", func() error {
		var res struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := promAPI(prom, "/api/v1/targets", nil, &res); err != nil {
			return err
		}
		up := map[string]bool{}
		for _, tg := range res.Data.ActiveTargets {
			if tg.Health == "up" {
				up[tg.Labels["job"]] = true
			} else if tg.LastError != "" {
				return fmt.Errorf("%s: %s", tg.Labels["job"], tg.LastError)
			}
		}
		if len(up) != 3 {
			return fmt.Errorf("up: %v", keys(up))
		}
		return nil
	})
}

func promPipelineMetrics(t *testing.T, prom string, shards int) {
	n := float64(shards)
	checks := map[string]func(float64) bool{
		`sum(up{job=~"ingest|analyzer|api"})`:                                  func(v float64) bool { return v == 3 },
		`sum(pulse_events_accepted_total)`:                                     func(v float64) bool { return v > 0 },
		`sum(pulse_events_processed_total)`:                                    func(v float64) bool { return v > 0 },
		`sum(rate(http_requests_total{service="ingest", method="POST"}[15s]))`: func(v float64) bool { return v > 0 },
		`sum(rate(pulse_events_processed_total[15s]))`:                         func(v float64) bool { return v > 0 },
		`sum(pulse_shards_owned)`:                                              func(v float64) bool { return v == n },
		`count(pulse_shard_lag)`:                                               func(v float64) bool { return v == n },
		`sum(anomalies_detected_total)`:                                        func(v float64) bool { return v >= 3 },
		`max(pulse_fleet_events_processed)`:                                    func(v float64) bool { return v > 0 },
		`max(rolling_average_rps)`:                                             func(v float64) bool { return v > 0 },
		`sum(pulse_end_to_end_latency_seconds_count)`:                          func(v float64) bool { return v > 0 },
		`sum(pulse_events_deadlettered_total)`:                                 func(v float64) bool { return v >= 1 },
		`histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="ingest"}[15s])))`: func(v float64) bool { return v > 0 },
	}
	waitFor(t, 60*time.Second, "the pipeline metrics have values in Prometheus", func() error {
		var bad []string
		for q, ok := range checks {
			v, err := promScalar(prom, q)
			if err != nil || !ok(v) {
				bad = append(bad, fmt.Sprintf("%s = %v %v", q, v, err))
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	})
}

// promEvaluates: every alert, dashboard and KEDA expression evaluates
// against real data.
func promEvaluates(t *testing.T, prom string, exprs []PromQLExpr) {
	for _, e := range exprs {
		var res struct {
			Status string `json:"status"`
		}
		if err := promAPI(prom, "/api/v1/query", url.Values{"query": {e.Expr}}, &res); err != nil || res.Status != "success" {
			t.Errorf("%s: Prometheus cannot evaluate %q: %v", e.Where, e.Expr, err)
		}
	}
}

func promRulesHealthy(t *testing.T, prom string) {
	waitFor(t, 30*time.Second, "every alert rule evaluated healthy", func() error {
		var res struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string    `json:"name"`
						Health         string    `json:"health"`
						LastError      string    `json:"lastError"`
						LastEvaluation time.Time `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := promAPI(prom, "/api/v1/rules", nil, &res); err != nil {
			return err
		}
		n := 0
		for _, g := range res.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" || r.LastEvaluation.IsZero() {
					return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
				}
			}
		}
		if n == 0 {
			return errors.New("no rules loaded")
		}
		return nil
	})
}

// redisOutage: liveness stays up, readiness and ingest say 503.
func (e *e2e) redisOutage(t *testing.T) {
	e.redis.Kill()
	for _, svc := range PulseServices {
		base := e.url(svc)
		waitFor(t, 15*time.Second, svc+" unready without Redis", func() error {
			if code, _, err := httpGet(base + "/ready"); err != nil || code != http.StatusServiceUnavailable {
				return fmt.Errorf("/ready: %d %v", code, err)
			}
			return nil
		})
		if code, _, err := httpGet(base + "/health"); err != nil || code != 200 {
			t.Errorf("%s /health without Redis: %d %v, want 200 (liveness must not depend on Redis)", svc, code, err)
		}
		if code, _, err := httpGet(base + "/prometheus"); err != nil || code != 200 {
			// Prometheus would then see the target down (ServiceDown) for
			// what is a Redis outage (RedisDown); reported, not failed.
			t.Logf("note: %s /prometheus answers %d without Redis (%v)", svc, code, err)
		}
	}
	ingest := e.url(config.Ingest)
	if code, body, err := httpPost(ingest+"/metrics", "application/json", `{"device_id":"d1","cpu":50,"rps":100}`); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("POST /metrics without Redis: %d %q %v, want 503", code, body, err)
	}
	if m, err := scrape(ingest); err != nil {
		t.Errorf("ingest /prometheus without Redis: %v", err)
	} else if v := m.Sum("pulse_events_rejected_total", map[string]string{"reason": "unavailable"}); v < 1 {
		t.Errorf(`pulse_events_rejected_total{reason="unavailable"} = %v after a POST without Redis`, v)
	}
}

// recovery: Redis back (same port, empty), every service recovers by
// itself and ingest accepts again.
func (e *e2e) recovery(t *testing.T) {
	if err := e.redis.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, svc := range PulseServices {
		base := e.url(svc)
		waitFor(t, 30*time.Second, svc+" ready again after Redis returned", func() error {
			if code, _, err := httpGet(base + "/ready"); err != nil || code != 200 {
				return fmt.Errorf("/ready: %d %v", code, err)
			}
			return nil
		})
	}
	e.post(t, `{"device_id":"d9","cpu":50,"rps":100}`, http.StatusAccepted)
	e.addScrapes(t)
}

// metricNames: the contract, per service, and everything the monitoring
// uses, against what the services exported in the subtests above.
func (e *e2e) metricNames(t *testing.T, exprs []PromQLExpr) {
	for _, svc := range PulseServices {
		if len(e.scrapes[svc]) == 0 {
			t.Fatalf("no scrape of %s: the subtests above failed", svc)
		}
	}
	for _, m := range Contract {
		for _, svc := range m.Services {
			for _, s := range m.SeriesNames() {
				if !e.scrapes[svc].Has(s) {
					t.Errorf("contract: %s does not export %s", svc, s)
				}
			}
		}
	}
	exported := map[string]bool{}
	for _, sc := range e.scrapes {
		for _, smp := range sc {
			exported[smp.Name] = true
		}
	}
	for _, ex := range exprs {
		names, err := MetricNames(ex.Expr)
		if err != nil {
			t.Errorf("%s: %v", ex.Where, err)
			continue
		}
		for _, n := range names {
			switch {
			case exported[n]:
			case n == "up": // synthesised by Prometheus: checked above by query
			case n == "redis_up": // the one exemption: redis_exporter's metric
			default:
				t.Errorf("%s uses %s, which no running service exports", ex.Where, n)
			}
		}
	}
}

// alertDelivery: a device with a steady history (past the scores'
// warm-up) jumps; the alert this opens reaches the Alertmanager of
// ALERTMANAGER_URL with its labels and its link to the api.
func (e *e2e) alertDelivery(t *testing.T) {
	const device = "e2e-alerting"
	var batch []string
	for i := 0; i < score.DefaultWarmup+50; i++ {
		batch = append(batch, fmt.Sprintf(`{"device_id":%q,"cpu":%d,"rps":%d}`, device, 50+i%3, 100+i%7))
	}
	for i := 0; i < 3; i++ {
		batch = append(batch, fmt.Sprintf(`{"device_id":%q,"cpu":99.5,"rps":5000}`, device))
	}
	for len(batch) > 0 {
		n := min(len(batch), 100)
		if code, body, err := httpPost(e.url(config.Ingest)+"/metrics", "application/json", "["+strings.Join(batch[:n], ",")+"]"); err != nil || code != http.StatusAccepted {
			t.Fatalf("POST /metrics: %d %q %v", code, body, err)
		}
		batch = batch[n:]
	}
	waitFor(t, 30*time.Second, "the jump to open a device alert", func() error {
		code, body, err := httpGet(e.url(config.API) + "/alerts?device_id=" + device + "&state=open")
		if err != nil || code != 200 || !strings.Contains(body, `"device_id":"`+device+`"`) {
			return fmt.Errorf("GET /alerts: %d %s %v", code, body, err)
		}
		return nil
	})
	waitFor(t, 30*time.Second, "the analyzer to post the alert to Alertmanager", func() error {
		for _, a := range e.am.alerts() {
			l := a.Labels
			if l["alertname"] == "PulseDeviceAnomaly" && l["device_id"] == device && l["signal"] != "" && l["severity"] != "" &&
				a.GeneratorURL == "http://pulse.local/alerts?device_id="+device {
				return nil
			}
		}
		return fmt.Errorf("posted: %+v", e.am.alerts())
	})
	if n := e.am.bad.Load(); n > 0 {
		t.Errorf("%d requests to Alertmanager were not POST /api/v2/alerts with a JSON array of alerts", n)
	}
}

// stubAlertmanager answers Alertmanager's POST /api/v2/alerts as
// Alertmanager does (200) and keeps the alerts.
type stubAlertmanager struct {
	URL    string
	mu     sync.Mutex
	posted []postedAlert
	bad    atomic.Int64
}

type postedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
}

func startStubAlertmanager(t *testing.T) *stubAlertmanager {
	am := &stubAlertmanager{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []postedAlert
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || json.NewDecoder(r.Body).Decode(&batch) != nil {
			am.bad.Add(1)
			http.Error(w, "not an alert post", http.StatusBadRequest)
			return
		}
		am.mu.Lock()
		am.posted = append(am.posted, batch...)
		am.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	am.URL = srv.URL
	return am
}

func (am *stubAlertmanager) alerts() []postedAlert {
	am.mu.Lock()
	defer am.mu.Unlock()
	return append([]postedAlert(nil), am.posted...)
}

// buildServices builds ingest, analyzer and api with the workspace.
func buildServices(t *testing.T, root string) map[string]string {
	t.Helper()
	for _, svc := range PulseServices {
		if m, _ := filepath.Glob(filepath.Join(root, svc, "*.go")); len(m) == 0 {
			if InCI() {
				t.Fatalf("%s has no Go files", svc)
			}
			t.Skipf("%s has no Go files yet: the services are not written", svc)
		}
	}
	// The workspace, as make build: the Dockerfiles' GOWORK=off builds are
	// checked by TestDockerfiles.
	bins, err := proctest.Build(context.Background(), proctest.BuildOptions{
		Root: root, Dir: t.TempDir(), Env: []string{"GOWORK=" + filepath.Join(root, "go.work")},
	}, PulseServices...)
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

func startPrometheus(t *testing.T, bin, logs string, addr map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n")
	for _, svc := range PulseServices {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    metrics_path: /prometheus\n    static_configs:\n      - targets: [%q]\n        labels: {pod: %s-e2e}\n", svc, addr[svc], svc)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(mustRead(t, filepath.Join(promDir(t), "alerts.yml"))), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, err := proctest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &proctest.Proc{
		Name: "prometheus",
		Argv: []string{bin,
			"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + listen,
			"--log.level=warn",
		},
		Addr: listen, Log: filepath.Join(logs, "prometheus.log"), Group: true,
		ReadyWithin: 30 * time.Second,
	}
	p.Ready = func(ctx context.Context) error { return proctest.GetOK(ctx, client, p.URL("/-/ready")) }
	p.StartTest(t, syscall.SIGTERM)
	return p.URL("")
}

func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
}

// --- HTTP ----------------------------------------------------------------

var client = &http.Client{Timeout: 5 * time.Second}

func httpGet(u string) (int, string, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func httpPost(u, ctype, body string) (int, string, error) {
	resp, err := client.Post(u, ctype, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// scrape reads a service's /prometheus.
func scrape(base string) (promtext.Metrics, error) {
	return promtext.Scrape(context.Background(), client, base+"/prometheus")
}

func promAPI(base, path string, q url.Values, out any) error {
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	code, body, err := httpGet(u)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("%s: %d %s", path, code, body)
	}
	return json.Unmarshal([]byte(body), out)
}

// promScalar runs an instant query that must return exactly one sample.
func promScalar(base, query string) (float64, error) {
	var res struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := promAPI(base, "/api/v1/query", url.Values{"query": {query}}, &res); err != nil {
		return 0, err
	}
	if len(res.Data.Result) != 1 {
		return 0, fmt.Errorf("%d samples", len(res.Data.Result))
	}
	s, _ := res.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// --- Redis (RESP) --------------------------------------------------------

// respDo runs one command on a fresh authenticated connection.
func respDo(addr, password string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if password != "" {
		if _, err := respCmd(conn, r, "AUTH", password); err != nil {
			return "", err
		}
	}
	return respCmd(conn, r, args...)
}

func respCmd(w io.Writer, r *bufio.Reader, args ...string) (string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", errors.New("empty reply")
	case line[0] == '-':
		return "", errors.New(line[1:])
	case line[0] == '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return line[1:], nil
	}
}

// respArray runs a command whose reply is an array of bulk strings.
func respArray(addr, password string, args ...string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if password != "" {
		if _, err := respCmd(conn, r, "AUTH", password); err != nil {
			return nil, err
		}
	}
	head, err := respCmd(conn, r, args...)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(head)
	if err != nil {
		return nil, fmt.Errorf("not an array: %q", head)
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) == 0 || line[0] != '$' {
			return nil, fmt.Errorf("unexpected %q", line)
		}
		size, _ := strconv.Atoi(line[1:])
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		out = append(out, string(buf[:size]))
	}
	return out, nil
}
