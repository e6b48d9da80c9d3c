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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd builds the three services, runs them against a private
// redis-server on loopback, sends traffic, and checks that:
//   - each service exports, on /prometheus, every metric of the contract it
//     owns, and every metric the alerts, dashboards and KEDA trigger use
//     (the one exemption: redis_up, which comes from the redis_exporter
//     sidecar, not from Pulse; `up` is checked in Prometheus itself);
//   - a real Prometheus (Debian's package) scrapes the three, all targets
//     up, the pipeline metrics have values, every alert and dashboard
//     expression evaluates without error and every alert rule is healthy;
//   - with Redis gone, /health stays 200 while /ready and POST answer 503
//     (so liveness never restarts pods during a Redis outage).
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	redisBin := NeedBinary(t, "redis-server", HintRedis)
	promBin := NeedBinary(t, "prometheus", HintPrometheus)
	root := repoRoot(t)
	bins := buildServices(t, root)
	logs := t.TempDir()

	// Redis, password-protected like the cluster's.
	redisPort := freePort(t)
	password := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	redis := startProc(t, logs, "redis", redisBin, []string{
		"--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--requirepass", password, "--dir", logs,
	}, nil)
	redisAddr := fmt.Sprintf("127.0.0.1:%d", redisPort)
	waitFor(t, 10*time.Second, "redis-server answers PING", func() error {
		r, err := respDo(redisAddr, password, "PING")
		if err == nil && r != "PONG" {
			err = fmt.Errorf("PING: %q", r)
		}
		return err
	})

	const shards = 4
	prefix := fmt.Sprintf("e2e%d", time.Now().UnixNano()%1_000_000)
	addr := map[string]string{}
	for _, svc := range PulseServices {
		addr[svc] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env := []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"HTTP_ADDR=" + addr[svc], "REDIS_ADDR=" + redisAddr, "REDIS_PASSWORD=" + password,
			"KEY_PREFIX=" + prefix, "SHARDS=" + strconv.Itoa(shards), "LOG_LEVEL=warn",
		}
		if svc == "analyzer" {
			env = append(env, "CONSUMER_NAME=e2e-analyzer-1", "LEASE_TTL=2s")
		}
		startProc(t, logs, svc, bins[svc], nil, env)
	}
	for _, svc := range PulseServices {
		base := "http://" + addr[svc]
		waitFor(t, 20*time.Second, svc+" /health and /ready", func() error {
			if code, body, err := httpGet(base + "/health"); err != nil || code != 200 || !strings.Contains(body, `"healthy"`) {
				return fmt.Errorf("/health: %d %q %v", code, body, err)
			}
			if code, body, err := httpGet(base + "/ready"); err != nil || code != 200 {
				return fmt.Errorf("/ready: %d %q %v", code, body, err)
			}
			return nil
		})
	}

	// Traffic: three devices, a steady history, then one spike each.
	ingest := "http://" + addr["ingest"]
	accepted := 0
	post := func(body string, want int) {
		t.Helper()
		code, resp, err := httpPost(ingest+"/metrics", "application/json", body)
		if err != nil || code != want {
			t.Fatalf("POST /metrics %s: %d %q %v, want %d", body, code, resp, err, want)
		}
		if code == http.StatusAccepted {
			accepted++
		}
	}
	for i := 0; i < 20; i++ {
		for _, d := range []string{"d1", "d2", "d3"} {
			post(fmt.Sprintf(`{"device_id":%q,"cpu":%d,"rps":%d}`, d, 50+i%3, 100+i%5), http.StatusAccepted)
		}
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		post(fmt.Sprintf(`{"device_id":%q,"cpu":99.5,"rps":5000}`, d), http.StatusAccepted)
	}
	post(`{"device_id":"d1","cpu":`, http.StatusBadRequest)
	// An entry no ingest would write: the analyzer dead-letters it.
	if _, err := respDo(redisAddr, password, "XADD", prefix+":metrics:{0}", "*", "d", "not a device!", "c", "x", "r", "1", "t", "1"); err != nil {
		t.Fatalf("XADD: %v", err)
	}

	analyzer := "http://" + addr["analyzer"]
	waitFor(t, 30*time.Second, "the analyzer processed every accepted event", func() error {
		m, err := scrape(analyzer)
		if err != nil {
			return err
		}
		if got := sampleSum(m, "pulse_events_processed_total", ""); got < float64(accepted) {
			return fmt.Errorf("processed %v of %d", got, accepted)
		}
		if got := sampleSum(m, "pulse_events_deadlettered_total", ""); got < 1 {
			return fmt.Errorf("dead-lettered %v, want 1", got)
		}
		if got := sampleSum(m, "pulse_shards_owned", ""); got != shards {
			return fmt.Errorf("owns %v shards, want %d", got, shards)
		}
		return nil
	})
	api := "http://" + addr["api"]
	for _, p := range []string{"/devices", "/anomalies", "/alerts", "/alerts?device_id=d1&state=open", "/analyze?device_id=d1", "/analyze"} {
		if code, body, err := httpGet(api + p); err != nil || code != 200 {
			t.Errorf("GET %s: %d %q %v", p, code, body, err)
		}
	}

	scrapes := map[string]map[string][]string{}
	for _, svc := range PulseServices {
		body, err := scrapeText("http://" + addr[svc])
		if err != nil {
			t.Fatal(err)
		}
		scrapes[svc] = parseSamples(body)
	}
	if v := sampleSum(scrapes["analyzer"], "anomalies_detected_total", ""); v < 3 {
		t.Errorf("anomalies_detected_total = %v after three spikes", v)
	}

	// A real Prometheus scrapes the three, with Pulse's alert rules loaded.
	ctx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // steady traffic while Prometheus watches; bounded.
		defer wg.Done()
		for i := 0; i < 3000 && ctx.Err() == nil; i++ {
			d := fmt.Sprintf("d%d", 1+i%3)
			httpPost(ingest+"/metrics", "application/json", fmt.Sprintf(`{"device_id":%q,"cpu":%d,"rps":%d}`, d, 50+i%3, 100+i%7))
			if i%10 == 0 {
				httpGet(api + "/devices")
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopTraffic(); wg.Wait() })

	prom := startPrometheus(t, promBin, logs, addr)
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
	checks := map[string]func(float64) bool{
		`sum(up{job=~"ingest|analyzer|api"})`:                                  func(v float64) bool { return v == 3 },
		`sum(pulse_events_accepted_total)`:                                     func(v float64) bool { return v > 0 },
		`sum(pulse_events_processed_total)`:                                    func(v float64) bool { return v > 0 },
		`sum(rate(http_requests_total{service="ingest", method="POST"}[15s]))`: func(v float64) bool { return v > 0 },
		`sum(rate(pulse_events_processed_total[15s]))`:                         func(v float64) bool { return v > 0 },
		`sum(pulse_shards_owned)`:                                              func(v float64) bool { return v == shards },
		`count(pulse_shard_lag)`:                                               func(v float64) bool { return v == shards },
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

	// Every alert and dashboard expression evaluates against real data.
	rf, err := ParseRules([]byte(mustRead(t, filepath.Join(promDir(t), "alerts.yml"))))
	if err != nil {
		t.Fatal(err)
	}
	exprs := RuleExprs(rf)
	dashDir := filepath.Join(root, "deployments", "k8s", "base", "monitoring", "grafana", "dashboards")
	files, _ := filepath.Glob(filepath.Join(dashDir, "*.json"))
	for _, f := range files {
		d, err := ParseDashboard([]byte(mustRead(t, f)))
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, DashboardExprs(d)...)
	}
	for _, so := range render(t, "base").Set.ScaledObjects() {
		for _, tr := range so.Spec.Triggers {
			if q := tr.Metadata["query"]; q != "" {
				exprs = append(exprs, PromQLExpr{"ScaledObject " + so.Name, q})
			}
		}
	}
	for _, e := range exprs {
		var res struct {
			Status string `json:"status"`
		}
		if err := promAPI(prom, "/api/v1/query", url.Values{"query": {e.Expr}}, &res); err != nil || res.Status != "success" {
			t.Errorf("%s: Prometheus cannot evaluate %q: %v", e.Where, e.Expr, err)
		}
	}
	// The KEDA query returns one sample, as KEDA requires.
	for _, so := range render(t, "base").Set.ScaledObjects() {
		for _, tr := range so.Spec.Triggers {
			if q := tr.Metadata["query"]; q != "" {
				if _, err := promScalar(prom, q); err != nil {
					t.Errorf("ScaledObject %s query %q: %v", so.Name, q, err)
				}
			}
		}
	}
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
	stopTraffic()
	wg.Wait()

	// Redis outage: liveness stays up, readiness and ingest say 503.
	redis.stop(syscall.SIGKILL)
	for _, svc := range PulseServices {
		base := "http://" + addr[svc]
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
	if code, body, err := httpPost(ingest+"/metrics", "application/json", `{"device_id":"d1","cpu":50,"rps":100}`); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("POST /metrics without Redis: %d %q %v, want 503", code, body, err)
	}
	if m, err := scrape(ingest); err != nil {
		t.Errorf("ingest /prometheus without Redis: %v", err)
	} else if v := sampleSum(m, "pulse_events_rejected_total", `reason="unavailable"`); v < 1 {
		t.Errorf(`pulse_events_rejected_total{reason="unavailable"} = %v after a POST without Redis`, v)
	}

	// Redis back (same port, empty): every service recovers by itself.
	startProc(t, logs, "redis-2", redisBin, []string{
		"--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--requirepass", password, "--dir", logs,
	}, nil)
	for _, svc := range PulseServices {
		base := "http://" + addr[svc]
		waitFor(t, 30*time.Second, svc+" ready again after Redis returned", func() error {
			if code, _, err := httpGet(base + "/ready"); err != nil || code != 200 {
				return fmt.Errorf("/ready: %d %v", code, err)
			}
			return nil
		})
	}
	post(`{"device_id":"d9","cpu":50,"rps":100}`, http.StatusAccepted)
	for _, svc := range PulseServices {
		m, err := scrape("http://" + addr[svc])
		if err != nil {
			t.Fatal(err)
		}
		for name, ls := range m {
			scrapes[svc][name] = append(scrapes[svc][name], ls...)
		}
	}

	// Names: the contract, per service, and everything the monitoring uses.
	for _, m := range Contract {
		for _, svc := range m.Services {
			for _, s := range m.SeriesNames() {
				if _, ok := scrapes[svc][s]; !ok {
					t.Errorf("contract: %s does not export %s", svc, s)
				}
			}
		}
	}
	exported := map[string]bool{}
	for _, sc := range scrapes {
		for n := range sc {
			exported[n] = true
		}
	}
	for _, e := range exprs {
		names, err := MetricNames(e.Expr)
		if err != nil {
			t.Errorf("%s: %v", e.Where, err)
			continue
		}
		for _, n := range names {
			switch {
			case exported[n]:
			case n == "up": // synthesised by Prometheus: checked above by query
			case n == "redis_up": // the one exemption: redis_exporter's metric
			default:
				t.Errorf("%s uses %s, which no running service exports", e.Where, n)
			}
		}
	}
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
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, svc := range PulseServices {
		args = append(args, "./"+svc)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the services: %v\n%s", err, out)
	}
	bins := map[string]string{}
	for _, svc := range PulseServices {
		bins[svc] = filepath.Join(dir, svc)
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
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProc(t, logs, "prometheus", bin, []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + listen,
		"--log.level=warn",
	}, nil)
	base := "http://" + listen
	waitFor(t, 30*time.Second, "Prometheus ready", func() error {
		code, _, err := httpGet(base + "/-/ready")
		if err == nil && code != 200 {
			err = fmt.Errorf("/-/ready: %d", code)
		}
		return err
	})
	return base
}

// --- processes ---------------------------------------------------------

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// startProc starts bin in its own process group, logging to logs/name.log;
// the test's cleanup stops the group (SIGTERM, then SIGKILL).
func startProc(t *testing.T, logs, name, bin string, args, env []string) *proc {
	t.Helper()
	logPath := filepath.Join(logs, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

// stop signals the process group and waits for the process to exit,
// escalating to SIGKILL after 10 seconds.
func (p *proc) stop(sig syscall.Signal) {
	p.once.Do(func() {
		syscall.Kill(-p.cmd.Process.Pid, sig)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

func scrapeText(base string) (string, error) {
	code, body, err := httpGet(base + "/prometheus")
	if err == nil && code != 200 {
		err = fmt.Errorf("GET %s/prometheus: %d", base, code)
	}
	return body, err
}

func scrape(base string) (map[string][]string, error) {
	body, err := scrapeText(base)
	if err != nil {
		return nil, err
	}
	return parseSamples(body), nil
}

// parseSamples maps name -> "labels value" lines.
func parseSamples(body string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		out[line[:end]] = append(out[line[:end]], line[end:])
	}
	return out
}

// sampleSum adds the values of name's samples whose labels contain match.
func sampleSum(m map[string][]string, name, match string) float64 {
	sum := 0.0
	for _, s := range m[name] {
		if !strings.Contains(s, match) {
			continue
		}
		f := strings.Fields(s[strings.LastIndexByte(s, '}')+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
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
