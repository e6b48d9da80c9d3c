package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

// The regression tests of the black-box probes of issue 14, against the
// real binaries on loopback and a real redis-server.

var services = []string{"ingest", "analyzer", "api"}

func prefixEnv() string { return fmt.Sprintf("KEY_PREFIX=hard%d", time.Now().UnixNano()) }

// do sends one request and returns its status, headers and body.
func do(t *testing.T, method, url string, header http.Header, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Made-up methods must not become label values: before auth and the rate
// limit they cost every client nothing, and each new value was a new set
// of series (20,000 requests took ingest from 20 to 82 MB).
func TestMethodLabelsAreBounded(t *testing.T) {
	known := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"OPTIONS": true, "CONNECT": true, "TRACE": true, "other": true}
	const madeUp = 120
	env := prefixEnv()
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			s := start(t, name, env)
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; i < madeUp; i++ {
				path := []string{"/metrics", "/health", "/nowhere", "/prometheus"}[i%4]
				req, _ := http.NewRequest(fmt.Sprintf("X%dMETHOD", i), s.URL(path), nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			_, _, body := do(t, "GET", s.URL("/prometheus"), nil, "")
			samples, err := promtext.Parse(strings.NewReader(body))
			if err != nil {
				t.Fatalf("/prometheus: %v", err)
			}
			methods := map[string]float64{}
			for _, smp := range samples {
				if smp.Name == "http_requests_total" {
					methods[smp.Labels["method"]] += smp.Value
				}
			}
			for m := range methods {
				if !known[m] {
					t.Errorf("method label %q is not one of the known methods or \"other\"", m)
					if len(methods) > 20 {
						t.Fatalf("%d distinct method labels", len(methods))
					}
				}
			}
			if methods["other"] != madeUp {
				t.Errorf(`http_requests_total{method="other"} sums to %v, want %d`, methods["other"], madeUp)
			}
		})
	}
}

// jsonValid reports whether body is one JSON value, non-empty.
func jsonValid(body string) bool {
	var v any
	return strings.TrimSpace(body) != "" && json.Unmarshal([]byte(body), &v) == nil
}

// rps near 1e308 overflowed the window sums: /analyze answered 200 with
// an empty body and rolling_average_rps read +Inf. Ingest now refuses rps
// beyond metric.MaxRPS with the index and field, the analyzers dead-letter
// such entries left by an older ingest, and the api never answers an
// empty or invalid body.
func TestHugeRPSNeverBreaksTheAnswers(t *testing.T) {
	env := []string{prefixEnv(), "SHARDS=4", "LEASE_TTL=1s", "MIN_SAMPLES=3"}
	prefix := strings.TrimPrefix(env[0], "KEY_PREFIX=")
	ingest := start(t, "ingest", env...)
	start(t, "analyzer", append(env, "CONSUMER_NAME=hard-a1")...)
	api := start(t, "api", env...)

	for _, tt := range []struct {
		body      string
		wantCode  int
		wantIndex int
	}{
		{`{"device_id":"big","cpu":1,"rps":1e308}`, 400, 0},
		{`{"device_id":"big","cpu":1,"rps":1.7976931348623157e308}`, 400, 0},
		{`[{"device_id":"big","cpu":1,"rps":5},{"device_id":"big","cpu":1,"rps":1000000001}]`, 400, 1},
		{`{"device_id":"big","cpu":1,"rps":1e9}`, 202, 0},
	} {
		code, _, body := do(t, "POST", ingest.URL("/metrics"), http.Header{"Content-Type": {"application/json"}}, tt.body)
		if code != tt.wantCode {
			t.Errorf("POST %s = %d %s, want %d", tt.body, code, body, tt.wantCode)
			continue
		}
		if code == 400 {
			var e struct {
				Error   string `json:"error"`
				Details []struct {
					Index  int    `json:"index"`
					Field  string `json:"field"`
					Reason string `json:"reason"`
				} `json:"details"`
			}
			if json.Unmarshal([]byte(body), &e) != nil || len(e.Details) != 1 || e.Details[0].Index != tt.wantIndex ||
				e.Details[0].Field != "rps" || !strings.Contains(e.Details[0].Reason, "1000000000") {
				t.Errorf("POST %s: body %s, want one detail naming index %d, field rps and the bound", tt.body, body, tt.wantIndex)
			}
		}
	}

	// What an older ingest accepted is still in the streams: a device's
	// history with one rps of 1.8e308 in the middle.
	c := redis.Client()
	defer c.Close()
	ctx := context.Background()
	keys := shard.Keys{Prefix: prefix}
	dev := "legacy-1"
	key := keys.Stream(shard.For(dev, 4))
	for i := 0; i < 12; i++ {
		rps := strconv.Itoa(100 + i%3)
		if i == 6 {
			rps = "1.7976931348623157e308"
		}
		vals := stream.Event{DeviceID: dev, CPU: 10, RPS: 1, Timestamp: float64(time.Now().Unix()), Receipt: time.Now().UnixNano()}.Values()
		vals[5] = rps
		if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	poll.True(t, 30*time.Second, "the legacy entries settled", func() bool {
		gs, err := c.XInfoGroups(ctx, key).Result()
		return err == nil && len(gs) == 1 && gs[0].Lag == 0 && gs[0].Pending == 0
	})
	for _, p := range []string{"/analyze", "/analyze?device_id=" + dev, "/analyze?device_id=big", "/anomalies", "/anomalies?device_id=" + dev, "/devices"} {
		code, h, body := do(t, "GET", api.URL(p), nil, "")
		if code != 200 || !jsonValid(body) || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s = %d %q (%s), want 200 with a JSON body", p, code, body, h.Get("Content-Type"))
		}
	}
	_, _, metrics := do(t, "GET", api.URL("/prometheus"), nil, "")
	if v, ok := promtext.Value(t, metrics, "rolling_average_rps", nil); !ok || math.IsInf(v, 0) || math.IsNaN(v) {
		t.Errorf("rolling_average_rps = %v (present %v), want a finite number", v, ok)
	}
	if n := c.XLen(ctx, keys.DeadLetter(shard.For(dev, 4))).Val(); n != 1 {
		t.Errorf("%d entries dead-lettered, want the one with rps 1.8e308", n)
	}
}

// With READ_TOKENS set, /analyze said 401 while /prometheus gave the same
// figures to anyone. Every service's /prometheus now needs a read token
// then, and a Prometheus configured as the docs say scrapes all three.
func TestMetricsNeedAReadToken(t *testing.T) {
	const token = "scrape-token-5b1e0c"
	env := []string{prefixEnv(), "READ_TOKENS=dashboard-token," + token}
	s := map[string]*service{}
	for _, name := range services {
		e := append([]string(nil), env...)
		switch name {
		case "ingest":
			e = append(e, "API_KEYS=device-key")
		case "analyzer":
			e = append(e, "CONSUMER_NAME=hard-metrics")
		}
		s[name] = start(t, name, e...)
	}
	code, _, body := do(t, "POST", s["ingest"].URL("/metrics"), http.Header{"Authorization": {"Bearer device-key"}}, `{"device_id":"m1","cpu":1,"rps":2}`)
	if code != 202 {
		t.Fatalf("POST with the API key: %d %s", code, body)
	}
	poll.True(t, 20*time.Second, "the event analyzed", func() bool {
		code, _, _ := do(t, "GET", s["api"].URL("/analyze?device_id=m1"), http.Header{"Authorization": {"Bearer " + token}}, "")
		return code == 200
	})
	for _, name := range services {
		u := s[name].URL("/prometheus")
		for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}, {"Authorization": {"Bearer device-key"}}, {"X-API-Key": {"wrong"}}} {
			code, hdr, body := do(t, "GET", u, h, "")
			if code != 401 || body != `{"error":"unauthorized"}` || hdr.Get("WWW-Authenticate") != `Bearer realm="pulse"` {
				t.Errorf("%s /prometheus with %v: %d %.200q, want 401 and nothing else", name, h, code, body)
			}
		}
		for _, h := range []http.Header{{"Authorization": {"Bearer " + token}}, {"X-API-Key": {"dashboard-token"}}} {
			if code, _, body := do(t, "GET", u, h, ""); code != 200 || !strings.Contains(body, "http_requests_total") {
				t.Errorf("%s /prometheus with %v: %d %.200q, want 200 and the metrics", name, h, code, body)
			}
		}
		for _, p := range []string{"/health", "/ready"} {
			if code, _, _ := do(t, "GET", s[name].URL(p), nil, ""); code != 200 {
				t.Errorf("%s %s without a token: %d, want 200", name, p, code)
			}
		}
	}

	// The scrape configuration the docs give: a bearer token from a file.
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed: the scrape with a token file is not exercised")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n")
	for _, name := range services {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    metrics_path: /prometheus\n    authorization:\n      credentials_file: %s\n    static_configs: [{targets: [%q]}]\n",
			name, filepath.Join(dir, "token"), s[name].Addr)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, err := proctest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &proctest.Proc{Name: "prometheus", Argv: []string{prom, "--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + listen, "--log.level=warn"}}
	p.StartTest(t, syscall.SIGKILL)
	var last string
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus with the token from credentials_file: not all targets up after 40s (last error %q)", last)
		}
		if prometheusTargetsUp(listen, &last) == len(services) {
			break
		}
	}
}

// prometheusTargetsUp returns how many targets Prometheus at addr has up,
// and sets lastErr to a scrape error it reports.
func prometheusTargetsUp(addr string, lastErr *string) int {
	resp, err := http.Get("http://" + addr + "/api/v1/targets")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var res struct {
		Data struct {
			ActiveTargets []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&res) != nil {
		return 0
	}
	up := 0
	for _, tg := range res.Data.ActiveTargets {
		if tg.Health == "up" {
			up++
		} else if tg.LastError != "" {
			*lastErr = tg.LastError
		}
	}
	return up
}

// A request with both Content-Length and Transfer-Encoding is refused
// with 400 and its connection closed (RFC 9112 §6.1): a request smuggled
// in its body, which a front proxy reading Content-Length took for body,
// is never answered.
func TestAmbiguousFramingIsRefusedAndClosed(t *testing.T) {
	env := prefixEnv()
	s := map[string]*service{}
	for _, name := range []string{"ingest", "api"} {
		s[name] = start(t, name, env)
	}
	smuggled := "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
	chunked := "0\r\n\r\n" + smuggled
	for _, tt := range []struct {
		name, service, head string
	}{
		{"ingest CL then TE", "ingest", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"ingest TE then CL", "ingest", "POST /metrics HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\ncontent-length: %d\r\n\r\n"},
		{"api GET", "api", "GET /devices HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"api after a clean request", "api", "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := proctest.DialRaw(t, s[tt.service].Addr)
			rc.Send(t, fmt.Sprintf(tt.head, len(chunked))+chunked)
			if strings.HasPrefix(tt.head, "GET /health") {
				if resp, body, err := rc.Response(5 * time.Second); err != nil || resp.StatusCode != 200 {
					t.Fatalf("clean request before: %v %v %s", err, resp, body)
				}
			}
			resp, body, err := rc.Response(5 * time.Second)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != 400 || !strings.Contains(body, "Content-Length and Transfer-Encoding") || !resp.Close {
				t.Errorf("response: %d %s (close %v), want 400 naming both headers, with Connection: close", resp.StatusCode, body, resp.Close)
			}
			if resp, body, err := rc.Response(3 * time.Second); err == nil {
				t.Errorf("the smuggled request was answered on the same connection: %d %s", resp.StatusCode, body)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("connection left open after the refusal: %v", err)
			}
		})
	}

	// Valid framings on one keep-alive connection are all served.
	rc := proctest.DialRaw(t, s["ingest"].Addr)
	ev := `{"device_id":"frame-1","cpu":1,"rps":2}`
	rc.Send(t, fmt.Sprintf("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(ev), ev))
	rc.Send(t, fmt.Sprintf("POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n", len(ev), ev))
	rc.Send(t, fmt.Sprintf("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s", len(ev), len(ev), ev))
	rc.Send(t, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, want := range []int{202, 202, 202, 200} {
		resp, body, err := rc.Response(5 * time.Second)
		if err != nil || resp.StatusCode != want || resp.Close {
			t.Fatalf("keep-alive request %d: %v %v %s, want %d on an open connection", i, err, resp, body, want)
		}
	}
}

// A body that trickles held an in-flight slot as long as its client
// liked. BODY_TIMEOUT cuts it: 408, connection closed, slot free.
func TestSlowBodiesAreCut(t *testing.T) {
	in := start(t, "ingest", prefixEnv(), "MAX_INFLIGHT=2", "BODY_TIMEOUT=1s")
	const slow = 2 // = MAX_INFLIGHT: every slot held
	var wg sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); wg.Wait() })
	conns := make([]*proctest.RawConn, slow)
	for i := range conns {
		rc := proctest.DialRaw(t, in.Addr)
		conns[i] = rc
		rc.Send(t, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
		wg.Add(1)
		go func() { // one byte every 100 ms, for at most 8 s
			defer wg.Done()
			for j := 0; j < 80; j++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := rc.Write([]byte(" ")); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	ok := false
	var code int
	var body string
	for time.Since(start) < 5*time.Second {
		code, _, body = do(t, "POST", in.URL("/metrics"), nil, `{"device_id":"fast-1","cpu":1,"rps":2}`)
		if code == 202 {
			ok = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Errorf("a normal POST while %d bodies trickle: still %d %s after 5s, want 202 once BODY_TIMEOUT=1s cut them", slow, code, body)
	}
	for i, rc := range conns {
		resp, body, err := rc.Response(3 * time.Second)
		if err != nil {
			t.Errorf("slow upload %d: no response: %v", i, err)
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		if resp.StatusCode != 408 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || !resp.Close {
			t.Errorf("slow upload %d: %d %s (close %v), want 408 with a JSON error and Connection: close", i, resp.StatusCode, body, resp.Close)
		}
	}
}

// Load balancers probe with HEAD: it answers as GET, without a body.
func TestHeadOnProbes(t *testing.T) {
	env := prefixEnv()
	for _, name := range services {
		s := start(t, name, env, "CONSUMER_NAME=hard-head")
		for _, p := range []string{"/health", "/ready"} {
			code, h, body := do(t, "HEAD", s.URL(p), nil, "")
			if code != 200 || body != "" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("%s HEAD %s = %d %q (%s), want 200, no body, the GET's Content-Type", name, p, code, body, h.Get("Content-Type"))
			}
		}
	}
}

// The analyzer served /debug/pprof on its only port, which Prometheus
// scrapes. Profiles are now off unless ADMIN_ADDR is set, on every
// service, and then only on that listener.
func TestProfilesOffByDefault(t *testing.T) {
	env := prefixEnv()
	for _, name := range services {
		s := start(t, name, env, "CONSUMER_NAME=hard-pprof")
		if code, _, _ := do(t, "GET", s.URL("/debug/pprof/"), nil, ""); code != 404 {
			t.Errorf("%s /debug/pprof/ without ADMIN_ADDR: %d, want 404", name, code)
		}
	}
	admin, err := proctest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	a := start(t, "analyzer", env, "CONSUMER_NAME=hard-pprof2", "ADMIN_ADDR="+admin)
	if code, _, _ := do(t, "GET", "http://"+admin+"/debug/pprof/", nil, ""); code != 200 {
		t.Errorf("analyzer ADMIN_ADDR /debug/pprof/: %d, want 200", code)
	}
	if code, _, _ := do(t, "GET", a.URL("/debug/pprof/heap"), nil, ""); code != 404 {
		t.Errorf("analyzer HTTP_ADDR /debug/pprof/heap with ADMIN_ADDR set: %d, want 404", code)
	}
}
