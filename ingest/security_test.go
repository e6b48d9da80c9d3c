package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/logcapture"
	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/redistest"
)

// send serves one request through h from remote with header.
func send(h http.Handler, method, path, remote string, header http.Header, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if header != nil {
		req.Header = header.Clone()
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const unauthorizedBody = `{"error":"unauthorized"}`

func TestPostMetricsNeedsAnAPIKey(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "API_KEYS=ingest-key-one, ingest-key-two")
	in := newTestIngest(t, env)
	tests := []struct {
		name      string
		method    string
		path      string
		header    http.Header
		device    string
		wantCode  int
		wantBody  string // exact, when set
		wantChall string
	}{
		{"no key", "POST", "/metrics", hdr("Content-Type", "application/json"), "k-none", 401, unauthorizedBody, `Bearer realm="pulse"`},
		{"wrong bearer", "POST", "/metrics", hdr("Authorization", "Bearer ingest-key-three"), "k-wrong", 401, unauthorizedBody, `Bearer realm="pulse"`},
		{"wrong X-API-Key", "POST", "/metrics", hdr("X-API-Key", "ingest-key-on"), "k-wrong2", 401, unauthorizedBody, `Bearer realm="pulse"`},
		{"key as Basic credentials", "POST", "/metrics", hdr("Authorization", "Basic ingest-key-one"), "k-basic", 401, unauthorizedBody, `Bearer realm="pulse"`},
		{"bearer", "POST", "/metrics", hdr("Authorization", "Bearer ingest-key-one"), "k-bearer", 202, "", ""},
		{"X-API-Key", "POST", "/metrics", hdr("X-API-Key", "ingest-key-two"), "k-header", 202, "", ""},
		{"health without a key", "GET", "/health", nil, "", 200, `{"status":"healthy"}`, ""},
		{"ready without a key", "GET", "/ready", nil, "", 200, "", ""},
		{"prometheus without a key", "GET", "/prometheus", nil, "", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.device != "" {
				body = metricBody(tt.device, 7)
			}
			rec := send(in.handler, tt.method, tt.path, "", tt.header, body)
			if rec.Code != tt.wantCode || (tt.wantBody != "" && rec.Body.String() != tt.wantBody) ||
				rec.Header().Get("WWW-Authenticate") != tt.wantChall {
				t.Errorf("%s %s: %d %s (WWW-Authenticate %q), want %d %s (%q)", tt.method, tt.path, rec.Code, rec.Body,
					rec.Header().Get("WWW-Authenticate"), tt.wantCode, tt.wantBody, tt.wantChall)
			}
			if tt.device != "" {
				if stored := streamHas(t, in.rdb, in.cfg.KeyPrefix, in.cfg.Shards, tt.device, 7); stored != (tt.wantCode == 202) {
					t.Errorf("event stored: %v, want %v", stored, tt.wantCode == 202)
				}
			}
		})
	}
}

// writeKeyFile replaces the key file at path as the kubelet updates a
// mounted Secret: the new content appears at once, whole.
func writeKeyFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func postWithKey(url, key, body string) httpResult {
	req, err := http.NewRequest("POST", url+"/metrics", strings.NewReader(body))
	if err != nil {
		return httpResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpResult{err: err}
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return httpResult{status: resp.StatusCode, body: b.String(), header: resp.Header}
}

// Keys rotate by rewriting the key file, without a restart; no key ever
// reaches the log, not even at debug level.
func TestAPIKeyRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	const (
		envKey = "env-key-5b0e2c77d1"
		oldKey = "old-key-9f3a61c2e8"
		newKey = "new-key-24d7be0a53"
	)
	keyFile := filepath.Join(t.TempDir(), "api-keys")
	writeKeyFile(t, keyFile, "# ingest API keys\n"+oldKey+"\n")
	env := baseEnv(t, redisSrv, "API_KEYS="+envKey, "API_KEYS_FILE="+keyFile, "LOG_LEVEL=debug")
	in := startIngest(t, env)

	before := []struct {
		key  string
		want int
	}{{oldKey, 202}, {envKey, 202}, {newKey, 401}, {"", 401}}
	for _, tt := range before {
		if r := postWithKey(in.URL, tt.key, metricBody("rot", 1)); r.status != tt.want {
			t.Errorf("before rotation, key %q: %d %s %v, want %d", tt.key, r.status, r.body, r.err, tt.want)
		}
	}

	writeKeyFile(t, keyFile, newKey+"\n")
	poll.Until(t, 5*time.Second, "the new key accepted and the old refused", func() (bool, string) {
		o, n := postWithKey(in.URL, oldKey, metricBody("rot", 2)), postWithKey(in.URL, newKey, metricBody("rot", 3))
		return o.status == 401 && n.status == 202, fmt.Sprintf("old key %d, new key %d", o.status, n.status)
	})
	if r := postWithKey(in.URL, envKey, metricBody("rot", 4)); r.status != 202 {
		t.Errorf("API_KEYS key after rotating the file: %d, want 202", r.status)
	}

	in.Cancel()
	if err := in.Wait(t, 20*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	logs := in.Log.String()
	for _, k := range []string{envKey, oldKey, newKey, "5b0e2c77", "9f3a61c2", "24d7be0a"} {
		if strings.Contains(logs, k) {
			t.Errorf("the log contains key material %q", k)
		}
	}
	if n := strings.Count(logs, `"keys loaded"`); n != 2 {
		t.Errorf("want 2 \"keys loaded\" lines (start and rotation), got %d; log:\n%s", n, logs)
	}
}

// A key file that cannot be read at start stops the service instead of
// starting it with fewer keys than intended.
func TestUnreadableKeyFileStopsStart(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "API_KEYS_FILE="+filepath.Join(t.TempDir(), "missing"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run(ctx, config.MapEnv(env), &logcapture.Buffer{}); err == nil || !strings.Contains(err.Error(), "API_KEYS_FILE") {
		t.Errorf("run = %v, want an error naming API_KEYS_FILE", err)
	}
}

// More than MAX_INFLIGHT requests at once: the extra one is answered 503
// with Retry-After at once, never queued, while probes and scrapes still
// answer; the held requests complete once Redis resumes.
func TestInFlightCap(t *testing.T) {
	srv := redistest.StartTest(t)
	env := baseEnv(t, srv, "MAX_INFLIGHT=2", "REDIS_TIMEOUT=10s")
	in := newTestIngest(t, env)
	srv.PauseWrites(t, 4*time.Second)
	blocked := func(n int) func() (bool, string) {
		return func() (bool, string) {
			got, err := srv.Blocked(context.Background(), "xadd")
			return got >= n, fmt.Sprintf("%d XADDs blocked (%v)", got, err)
		}
	}
	held := make(chan *httptest.ResponseRecorder, 2)
	for i := 1; i <= 2; i++ {
		go func() { held <- send(in.handler, "POST", "/metrics", "", nil, metricBody("held", i)) }()
		// Each held request waits in its own pipeline: a free writer
		// takes it while the others are blocked.
		poll.Until(t, 3*time.Second, fmt.Sprintf("POST %d waiting on the paused Redis", i), blocked(i))
	}

	start := time.Now()
	rec := send(in.handler, "POST", "/metrics", "", nil, metricBody("shed", 3))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" || rec.Body.String() != `{"error":"overloaded, retry later"}` {
		t.Errorf("third POST: %d %s (Retry-After %q), want 503 overloaded with Retry-After 1", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("third POST answered after %v, want at once", d)
	}
	for _, p := range []string{"/health", "/ready", "/prometheus"} {
		if rec := send(in.handler, "GET", p, "", nil, ""); rec.Code != 200 {
			t.Errorf("GET %s with the cap reached: %d %s", p, rec.Code, rec.Body)
		}
	}

	srv.Unpause()
	for i := 0; i < 2; i++ {
		if rec := <-held; rec.Code != 202 {
			t.Errorf("held POST: %d %s, want 202", rec.Code, rec.Body)
		}
	}
	if rec := send(in.handler, "POST", "/metrics", "", nil, metricBody("after", 4)); rec.Code != 202 {
		t.Errorf("POST after the held ones finished: %d %s, want 202", rec.Code, rec.Body)
	}
	if streamHas(t, in.rdb, env["KEY_PREFIX"], 4, "shed", 3) {
		t.Error("the shed POST's event was stored")
	}
}

// RATE_LIMIT=5 RATE_BURST=5: a client's sixth quick request is refused
// with 429 and Retry-After; another address, and the probes, are not.
func TestRateLimitPerClient(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "RATE_LIMIT=5", "RATE_BURST=5")
	in := newTestIngest(t, env)
	var refused *httptest.ResponseRecorder
	var client string
	// Six requests within 200 ms, or a token refills: on a loaded machine
	// a slow attempt is retried from a fresh address.
	for attempt := 1; attempt <= 5 && refused == nil; attempt++ {
		client = fmt.Sprintf("192.0.2.%d:4000", attempt)
		start := time.Now()
		for i := 1; i <= 5; i++ {
			if rec := send(in.handler, "POST", "/metrics", client, nil, metricBody("rl", i)); rec.Code != 202 {
				t.Fatalf("request %d of the burst: %d %s, want 202", i, rec.Code, rec.Body)
			}
		}
		rec := send(in.handler, "POST", "/metrics", client, nil, metricBody("rl", 6))
		switch {
		case rec.Code == 429:
			refused = rec
		case time.Since(start) < 150*time.Millisecond:
			t.Fatalf("sixth quick request: %d %s, want 429", rec.Code, rec.Body)
		}
	}
	if refused == nil {
		t.Fatal("no attempt was quick enough")
	}
	if s, err := strconv.Atoi(refused.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds >= 1", refused.Header().Get("Retry-After"))
	}
	if refused.Body.String() != `{"error":"rate limit exceeded, retry later"}` {
		t.Errorf("429 body %s", refused.Body)
	}
	if rec := send(in.handler, "POST", "/metrics", "198.51.100.7:4000", nil, metricBody("other", 1)); rec.Code != 202 {
		t.Errorf("another client: %d %s, want 202", rec.Code, rec.Body)
	}
	for _, p := range []string{"/health", "/ready", "/prometheus"} {
		if rec := send(in.handler, "GET", p, client, nil, ""); rec.Code != 200 {
			t.Errorf("GET %s from the limited client: %d, want 200", p, rec.Code)
		}
	}
	// X-Forwarded-For does not make another client.
	rec := send(in.handler, "POST", "/metrics", client, hdr("X-Forwarded-For", "203.0.113.9"), metricBody("rl", 7))
	if rec.Code != 429 {
		t.Errorf("limited client with X-Forwarded-For: %d, want 429", rec.Code)
	}
}

func get(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), nil
}

// ADMIN_ADDR serves the profiles on a second listener; the public port
// never does. Both stop with run.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "ADMIN_ADDR=127.0.0.1:0")
	in := startIngest(t, env)
	admin := in.AdminURL(t, "ingest.admin")
	in.CheckAdminListener(t, admin, "/metrics")
	in.Cancel()
	if err := in.Wait(t, 20*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	if _, _, err := get(admin + "/health"); err == nil {
		t.Error("the admin listener still answers after run returned")
	}
}

// An admin address that cannot be bound stops the start.
func TestAdminAddrInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env := baseEnv(t, redisSrv, "ADMIN_ADDR="+taken.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run(ctx, config.MapEnv(env), &logcapture.Buffer{}); err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") {
		t.Errorf("run = %v, want an error naming ADMIN_ADDR", err)
	}
}

// A gzip'ed body that trickles is cut at BODY_TIMEOUT like a plain one:
// 408 with a JSON error, counted as reason="timeout", connection closed.
func TestSlowGzipBodyIsCut(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv, "BODY_TIMEOUT=1s", "READ_TOKENS=scrape-token")
	in := startIngest(t, env)
	body := gz(t, []byte(metricBody("slow-gz", 1)))
	c, err := net.Dial("tcp", strings.TrimPrefix(in.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(body))
	c.Write(body[:len(body)/2]) // and the rest never comes
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || string(b) != `{"error":"request body not received in time (BODY_TIMEOUT)"}` || !resp.Close {
		t.Errorf("slow gzip body: %d %s (close %v), want 408 with the BODY_TIMEOUT error, connection closed", resp.StatusCode, b, resp.Close)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("answered after %v, want about BODY_TIMEOUT=1s", d)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open")
	}
	req, _ := http.NewRequest("GET", in.URL+"/prometheus", nil)
	req.Header.Set("Authorization", "Bearer scrape-token")
	resp, err = httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	if v, _ := promtext.Value(t, string(m), "pulse_events_rejected_total", map[string]string{"reason": "timeout"}); v != 1 {
		t.Errorf(`pulse_events_rejected_total{reason="timeout"} = %v, want 1`, v)
	}
	if code, _, _ := get(in.URL + "/prometheus"); code != 401 {
		t.Errorf("/prometheus without the read token: %d, want 401", code)
	}
}
