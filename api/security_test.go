package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/auth"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/results"
	"github.com/pulse-iot/pulse/internal/state"
)

func request(h http.Handler, path, remote string, header http.Header) response {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if header != nil {
		req.Header = header.Clone()
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestQueriesNeedAReadToken(t *testing.T) {
	t.Parallel()
	env := apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis)
	env["READ_TOKENS"] = "read-token-a,read-token-b"
	h := newTestAPI(t, env)
	const challenge = `Bearer realm="pulse"`
	type tc struct {
		name      string
		path      string
		header    http.Header
		wantCode  int
		wantChall string
	}
	var tests []tc
	for _, p := range []string{"/analyze", "/analyze?device_id=nobody", "/anomalies", "/alerts", "/alerts?device_id=nobody&state=open", "/devices", "/prometheus"} {
		tests = append(tests,
			tc{p + " without a token", p, nil, 401, challenge},
			tc{p + " with a wrong token", p, header("Authorization", "Bearer read-token-c"), 401, challenge},
			tc{p + " with a wrong X-API-Key", p, header("X-API-Key", "read-token"), 401, challenge},
			tc{p + " with a bearer token", p, header("Authorization", "Bearer read-token-a"), 0, ""},
			tc{p + " with X-API-Key", p, header("X-API-Key", "read-token-b"), 0, ""},
		)
	}
	for _, p := range []string{"/health", "/ready"} {
		tests = append(tests, tc{p + " stays open", p, nil, 200, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(h, tt.path, "", tt.header)
			authorized := r.status != 401
			if tt.wantCode == 401 && (r.status != 401 || string(r.body) != `{"error":"unauthorized"}`) ||
				tt.wantCode == 0 && !authorized || tt.wantCode == 200 && r.status != 200 ||
				r.header.Get("WWW-Authenticate") != tt.wantChall {
				t.Errorf("GET %s: %d %s (WWW-Authenticate %q), want %d (%q)", tt.path, r.status, r.body,
					r.header.Get("WWW-Authenticate"), tt.wantCode, tt.wantChall)
			}
		})
	}
}

// startAPI calls run with env and waits until it listens; the test's
// cleanup stops it if the test did not.
func startAPI(t *testing.T, env map[string]string) *proctest.InProcess {
	t.Helper()
	return proctest.StartInProcess(t, "api", "api", run, config.MapEnv(env))
}

// stopAPI cancels run and wants it to return nil.
func stopAPI(t *testing.T, a *proctest.InProcess) {
	t.Helper()
	if err := a.Stop(t, 20*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
}

func httpGet(url string, h http.Header) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if h != nil {
		req.Header = h
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// Read tokens rotate by rewriting READ_TOKENS_FILE, without a restart, and
// never reach the log.
func TestReadTokenRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	const (
		oldToken = "old-read-token-61f0a9d4"
		newToken = "new-read-token-c83e5b27"
	)
	file := filepath.Join(t.TempDir(), "read-tokens")
	write := func(content string) {
		if err := os.WriteFile(file+".new", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	write(oldToken + "\n")
	env := apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis)
	env["READ_TOKENS_FILE"] = file
	env["LOG_LEVEL"] = "debug"
	a := startAPI(t, env)
	bearer := func(tok string) http.Header { return header("Authorization", "Bearer "+tok) }

	if code, body := httpGet(a.URL+"/devices", bearer(oldToken)); code != 200 {
		t.Errorf("old token before rotation: %d %s", code, body)
	}
	if code, _ := httpGet(a.URL+"/devices", bearer(newToken)); code != 401 {
		t.Errorf("new token before rotation: %d, want 401", code)
	}
	write("# rotated\n" + newToken + "\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, _ := httpGet(a.URL+"/devices", bearer(oldToken))
		n, _ := httpGet(a.URL+"/devices", bearer(newToken))
		if o == 401 && n == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after rotation: old token %d, new token %d; want 401, 200", o, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := httpGet(a.URL+"/health", nil); code != 200 {
		t.Errorf("/health without a token: %d", code)
	}
	stopAPI(t, a)
	logs := a.Log.String()
	for _, k := range []string{oldToken, newToken, "61f0a9d4", "c83e5b27"} {
		if strings.Contains(logs, k) {
			t.Errorf("the log contains token material %q", k)
		}
	}
}

// ADMIN_ADDR serves the profiles; the public port never does.
func TestAPIAdminListener(t *testing.T) {
	t.Parallel()
	env := apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis)
	env["ADMIN_ADDR"] = "127.0.0.1:0"
	a := startAPI(t, env)
	a.CheckAdminListener(t, a.AdminURL(t, "api.admin"), "/analyze")
	stopAPI(t, a)
}

func TestAPIRateLimitPerClient(t *testing.T) {
	t.Parallel()
	env := apiEnv(redisSrv, redisSrv.Prefix(t), defaultAnalysis)
	env["RATE_LIMIT"] = "0.5" // a token every 2 s
	env["RATE_BURST"] = "2"
	h := newTestAPI(t, env)
	const client = "192.0.2.10:5000"
	for i := 0; i < 2; i++ {
		if r := request(h, "/devices", client, nil); r.status != 200 {
			t.Fatalf("request %d of the burst: %d %s", i, r.status, r.body)
		}
	}
	r := request(h, "/analyze", client, nil)
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != 429 || s < 1 || s > 2 {
		t.Errorf("third request: %d %s (Retry-After %q), want 429 with Retry-After 1-2", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := request(h, "/devices", "192.0.2.11:5000", nil); r.status != 200 {
		t.Errorf("another client: %d, want 200", r.status)
	}
	for _, p := range []string{"/health", "/ready", "/prometheus"} {
		if r := request(h, p, client, nil); r.status != 200 {
			t.Errorf("GET %s from the limited client: %d, want 200", p, r.status)
		}
	}
}

// blockingStore holds every query until release is closed. The queries
// the tests do not make are the embedded (nil) interface's.
type blockingStore struct {
	resultStore
	entered chan struct{}
	release chan struct{}
}

var _ resultStore = (*blockingStore)(nil)

func (b *blockingStore) wait() {
	b.entered <- struct{}{}
	<-b.release
}

func (b *blockingStore) Fleet(context.Context) (results.Fleet, error) {
	b.wait()
	return results.Fleet{}, nil
}
func (b *blockingStore) Device(context.Context, string) (*state.Device, error) {
	b.wait()
	return nil, results.ErrNotFound
}
func (b *blockingStore) Anomalies(context.Context, string, int) ([]state.Anomaly, error) {
	b.wait()
	return nil, nil
}
func (b *blockingStore) Alerts(context.Context, string, string, int) ([]state.Alert, error) {
	b.wait()
	return nil, nil
}
func (b *blockingStore) Devices(context.Context, string, int) ([]results.DeviceSummary, string, error) {
	b.wait()
	return nil, "", nil
}

// MAX_INFLIGHT=2: a third query while two are served is shed at once with
// 503 and Retry-After; probes still answer.
func TestAPIInFlightCap(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(config.API, config.MapEnv(map[string]string{"MAX_INFLIGHT": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	store := &blockingStore{entered: make(chan struct{}, 2), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	r := httpserver.NewRouter(httpserver.Options{Service: config.API, Log: zap.NewNop(), Registry: reg,
		Ready: func(context.Context) error { return nil }})
	tokens, _ := auth.NewSet(nil, "", zap.NewNop())
	addRoutes(r, cfg, store, tokens, zap.NewNop())

	held := make(chan response, 2)
	for _, p := range []string{"/devices", "/alerts"} {
		go func() { held <- request(r, p, "", nil) }()
		<-store.entered
	}
	start := time.Now()
	shed := request(r, "/analyze", "", nil)
	if shed.status != 503 || shed.header.Get("Retry-After") != "1" || string(shed.body) != `{"error":"overloaded, retry later"}` {
		t.Errorf("third query: %d %s (Retry-After %q), want 503 overloaded with Retry-After 1", shed.status, shed.body, shed.header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("shed after %v, want at once", d)
	}
	for _, p := range []string{"/health", "/ready", "/prometheus"} {
		if r := request(r, p, "", nil); r.status != 200 {
			t.Errorf("GET %s at the cap: %d", p, r.status)
		}
	}
	close(store.release)
	for i := 0; i < 2; i++ {
		if r := <-held; r.status != 200 {
			t.Errorf("held query: %d %s", r.status, r.body)
		}
	}
	if r := request(r, "/devices", "", nil); r.status != 200 {
		t.Errorf("query after the held ones: %d %s", r.status, r.body)
	}
}
