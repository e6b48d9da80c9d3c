package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/promtext"
)

// Request names the locustfile gives its requests.
const (
	locustSingle = "/metrics"
	locustBatch  = "/metrics [batch of 100]"
	locustFleet  = "/analyze"
	locustBatchN = 100
)

// locustBinary returns the locust command, skipping the test where Locust
// is not installed, except in CI, which must run it.
func locustBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("locust")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("locust not installed: apt-get install python3-locust")
		}
		t.Skip("locust not installed (apt-get install python3-locust)")
	}
	return bin
}

// runLocust runs the locustfile headless for the given time and returns
// its statistics by request name ("Aggregated": all of them).
func runLocust(t *testing.T, users int, runTime string, hostArgs ...string) map[string]locustStats {
	t.Helper()
	bin := locustBinary(t)
	file, err := filepath.Abs("../../locust/locustfile.py")
	if err != nil {
		t.Fatal(err)
	}
	csvPrefix := filepath.Join(t.TempDir(), "locust")
	args := append([]string{"-f", file, "--headless", "-u", strconv.Itoa(users), "-r", strconv.Itoa(users),
		"-t", runTime, "--stop-timeout", "5", "--only-summary", "--csv", csvPrefix, "--loglevel", "WARNING"}, hostArgs...)
	// Locust stops itself after runTime; the context only guards against a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PULSE_INGEST_URL=", "PULSE_API_URL=", "LOCUST_HOST=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	stats, serr := readLocustStats(csvPrefix + "_stats.csv")
	if err != nil || serr != nil {
		failures, _ := os.ReadFile(csvPrefix + "_failures.csv")
		t.Fatalf("locust %v: %v (stats: %v)\nfailures:\n%s\noutput:\n%s", args, err, serr, failures, tail(string(out), 4000))
	}
	return stats
}

type locustStats struct {
	requests, failures int64
}

// readLocustStats reads Locust's <prefix>_stats.csv (the same columns in
// Locust 2.12 and current 2.x).
func readLocustStats(path string) (map[string]locustStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"Name", "Request Count", "Failure Count"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("%s: no %q column in %v", path, h, rows[0])
		}
	}
	out := map[string]locustStats{}
	for _, r := range rows[1:] {
		n, err1 := strconv.ParseInt(r[col["Request Count"]], 10, 64)
		f, err2 := strconv.ParseInt(r[col["Failure Count"]], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad counts in %v", path, r)
		}
		out[r[col["Name"]]] = locustStats{requests: n, failures: f}
	}
	return out, nil
}

// checkLocustRan asserts that nothing failed and that every user class
// sent requests.
func checkLocustRan(t *testing.T, stats map[string]locustStats) {
	t.Helper()
	checkLocustClean(t, stats)
	for _, name := range []string{locustSingle, locustBatch, locustFleet} {
		if stats[name].requests == 0 {
			t.Errorf("locust sent no %q (%v)", name, stats)
		}
	}
}

// checkLocustClean asserts that Locust sent requests and none failed.
func checkLocustClean(t *testing.T, stats map[string]locustStats) {
	t.Helper()
	if all := stats["Aggregated"]; all.requests == 0 || all.failures != 0 {
		t.Errorf("locust: %d requests, %d failed; want some and none failed (%v)", all.requests, all.failures, stats)
	}
}

// acceptedByIngest reads ingest's pulse_events_accepted_total.
func acceptedByIngest(t *testing.T, p *pipeline) int64 {
	t.Helper()
	m, err := promtext.Scrape(context.Background(), http.DefaultClient, p.ingest.URL("/prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	return int64(m.Sum("pulse_events_accepted_total", nil))
}

// checkEveryAcceptedEventAnalyzed asserts that ingest accepted at least
// the events of Locust's successful POSTs (Locust writes its CSV once a
// second, so the last second's requests may be missing from it; its exit
// code, checked in runLocust, covers every failure) and that the analyzers
// analyzed every event ingest accepted, exactly once.
func checkEveryAcceptedEventAnalyzed(t *testing.T, p *pipeline, stats map[string]locustStats) {
	t.Helper()
	sent := stats[locustSingle].requests + locustBatchN*stats[locustBatch].requests
	accepted := acceptedByIngest(t, p)
	if accepted < sent || accepted == 0 {
		t.Errorf("ingest accepted %d events, fewer than the %d of Locust's accepted requests (%d single, %d batches)",
			accepted, sent, stats[locustSingle].requests, stats[locustBatch].requests)
	}
	var f fleetView
	poll.True(t, 90*time.Second, fmt.Sprintf("all %d accepted events analyzed", accepted), func() bool {
		getJSON(t, p.api.URL("/analyze"), &f)
		return f.TotalProcessed >= accepted && f.Lag == 0 && f.Pending == 0
	})
	if f.TotalProcessed != accepted {
		t.Errorf("total_processed = %d, want the %d accepted events", f.TotalProcessed, accepted)
	}
	p.checkSettled(t)
}

func TestLocustRunsCleanAndEveryAcceptedEventIsAnalyzed(t *testing.T) {
	locustBinary(t)
	p := startPipeline(t, 2, "robust")
	stats := runLocust(t, 26, "20s", "--ingest-host", p.ingest.URL(""), "--api-host", p.api.URL(""))
	checkLocustRan(t, stats)
	checkEveryAcceptedEventAnalyzed(t, p, stats)
}

// TestLocustThroughOneIngressHost runs the locustfile with --host only, as
// behind the Kubernetes Ingress: a proxy routes POST /metrics to ingest and
// everything else to the api, as deployments/k8s/base/ingress.yaml does.
func TestLocustThroughOneIngressHost(t *testing.T) {
	locustBinary(t)
	p := startPipeline(t, 2, "robust")
	proxy := func(s *service) *httputil.ReverseProxy {
		u, err := url.Parse(s.URL(""))
		if err != nil {
			t.Fatal(err)
		}
		return httputil.NewSingleHostReverseProxy(u)
	}
	ingest, api := proxy(p.ingest), proxy(p.api)
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			ingest.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	defer ingress.Close()
	stats := runLocust(t, 26, "8s", "--host", ingress.URL)
	checkLocustRan(t, stats)
	checkEveryAcceptedEventAnalyzed(t, p, stats)
}

// The named mix — four named metrics and tags per event, dashboards
// reading /signals, /tags and the signal and tag views — runs clean too,
// and every signal it sends is tracked.
func TestLocustNamedMixRunsClean(t *testing.T) {
	locustBinary(t)
	p := startPipeline(t, 2, "robust")
	stats := runLocust(t, 26, "10s", "--ingest-host", p.ingest.URL(""), "--api-host", p.api.URL(""), "--mix", "named")
	checkLocustClean(t, stats)
	// The dashboards spread their reads over the views: some of them, not
	// each one, in a run this short.
	views := int64(0)
	for name, s := range stats {
		if strings.HasPrefix(name, "/analyze") || name == "/signals" || name == "/tags" {
			views += s.requests
		}
	}
	if stats[locustSingle].requests == 0 || stats[locustBatch].requests == 0 || views == 0 {
		t.Errorf("locust sent %d single, %d batch POSTs and %d reads of the views; want some of each (%v)",
			stats[locustSingle].requests, stats[locustBatch].requests, views, stats)
	}
	checkEveryAcceptedEventAnalyzed(t, p, stats)
	var signals struct {
		Signals []string `json:"signals"`
	}
	getJSON(t, p.api.URL("/signals"), &signals)
	if want := []string{"battery_v", "cpu", "humidity", "rps", "temperature", "vibration"}; !reflect.DeepEqual(signals.Signals, want) {
		t.Errorf("GET /signals = %v, want %v", signals.Signals, want)
	}
}
