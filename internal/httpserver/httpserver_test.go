package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/auth"
)

func newTestRouter(ready error) *gin.Engine {
	r := NewRouter(Options{
		Service:  "test",
		Log:      zap.NewNop(),
		Registry: prometheus.NewRegistry(),
		Ready:    func(context.Context) error { return ready },
	})
	r.GET("/boom", func(*gin.Context) { panic("boom") })
	return r
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		ready    error
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{"health", nil, "GET", "/health", 200, `{"status":"healthy"}`},
		{"health ignores redis", errors.New("down"), "GET", "/health", 200, `{"status":"healthy"}`},
		{"ready", nil, "GET", "/ready", 200, `"ready"`},
		{"not ready", errors.New("redis down"), "GET", "/ready", 503, `redis down`},
		{"unknown route", nil, "GET", "/nope", 404, `{"error":"not found"}`},
		{"wrong method", nil, "POST", "/health", 405, `{"error":"method not allowed"}`},
		{"HEAD health", nil, "HEAD", "/health", 200, ""},
		{"HEAD ready", nil, "HEAD", "/ready", 200, ""},
		{"HEAD not ready", errors.New("redis down"), "HEAD", "/ready", 503, ""},
		{"made-up method", nil, "BREW", "/health", 405, `{"error":"method not allowed"}`},
		{"panic becomes 500", nil, "GET", "/boom", 500, `{"error":"internal error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			newTestRouter(tt.ready).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestMetricsExposeRequests(t *testing.T) {
	r := newTestRouter(nil)
	for i := 0; i < 3; i++ {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/health", nil))
	}
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nope", nil))
	scrape(t, r,
		`http_requests_total{code="200",method="GET",route="/health",service="test"} 3`,
		`http_requests_total{code="404",method="GET",route="unmatched",service="test"} 1`,
		`http_request_duration_seconds_count{method="GET",route="/health",service="test"} 3`,
		"current_rps ",
	)
}

// scrape GETs /prometheus from r, wants each of lines in it, and returns
// the page.
func scrape(t *testing.T, r http.Handler, lines ...string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/prometheus", nil))
	body := rec.Body.String()
	for _, want := range lines {
		if !strings.Contains(body, want) {
			t.Errorf("/prometheus lacks %q", want)
		}
	}
	return body
}

// Made-up methods share one label value, whatever their number.
func TestMetricsLabelsStayBounded(t *testing.T) {
	r := newTestRouter(nil)
	for i := 0; i < 50; i++ {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(fmt.Sprintf("M%d", i), "/health", nil))
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(fmt.Sprintf("M%d", i), fmt.Sprintf("/x%d", i), nil))
	}
	body := scrape(t, r,
		`http_requests_total{code="405",method="other",route="unmatched",service="test"} 50`,
		`http_requests_total{code="404",method="other",route="unmatched",service="test"} 50`,
	)
	if n := strings.Count(body, "\nhttp_requests_total{"); n != 2 {
		t.Errorf("%d http_requests_total series, want 2:\n%s", n, body)
	}
}

// With MetricsAuth, /prometheus answers only with a token; the probes stay
// open.
func TestMetricsAuth(t *testing.T) {
	tokens, err := auth.NewSet([]string{"scrape-token"}, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(Options{Service: "test", Log: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Ready: func(context.Context) error { return nil }, MetricsAuth: auth.Middleware(tokens)})
	tests := []struct {
		path, token string
		wantCode    int
	}{
		{"/prometheus", "", 401},
		{"/prometheus", "wrong", 401},
		{"/prometheus", "scrape-token", 200},
		{"/health", "", 200},
		{"/ready", "", 200},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tt.wantCode || tt.wantCode == 401 && strings.Contains(rec.Body.String(), "http_requests_total") {
			t.Errorf("GET %s with token %q: %d %.80s, want %d", tt.path, tt.token, rec.Code, rec.Body, tt.wantCode)
		}
	}
}

func TestRateMeter(t *testing.T) {
	var r rateMeter
	base := time.Unix(1000, 0)
	for s := 0; s < 10; s++ {
		for i := 0; i < 50; i++ {
			r.add(base.Add(time.Duration(s) * time.Second))
		}
	}
	if got := r.rate(base.Add(10 * time.Second)); got != 50 {
		t.Errorf("rate after 10 s of 50/s = %v, want 50", got)
	}
	if got := r.rate(base.Add(5 * time.Second)); got != 25 {
		t.Errorf("rate counting only complete seconds = %v, want 25", got)
	}
	if got := r.rate(base.Add(30 * time.Second)); got != 0 {
		t.Errorf("rate after 20 idle seconds = %v, want 0", got)
	}
}

func TestServeDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("done"))
	})
	ts := httptest.NewUnstartedServer(h)
	ln := ts.Listener
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, zap.NewNop(), NewServer(h, zap.NewNop(), DefaultBodyTimeout), ln, 5*time.Second)
	}()
	respc := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			respc <- err.Error()
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 4)
		resp.Body.Read(b)
		respc <- string(b)
	}()
	<-started
	cancel()
	if got := <-respc; got != "done" {
		t.Errorf("in-flight request got %q, want done", got)
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve = %v, want nil after graceful shutdown", err)
	}
}

func TestPprofOnlyWhereAdded(t *testing.T) {
	public := newTestRouter(nil)
	admin := newTestRouter(nil)
	AddPprof(admin)
	tests := []struct {
		name     string
		router   *gin.Engine
		path     string
		wantCode int
	}{
		{"public has no index", public, "/debug/pprof/", 404},
		{"public has no heap", public, "/debug/pprof/heap", 404},
		{"admin index", admin, "/debug/pprof/", 200},
		{"admin heap", admin, "/debug/pprof/heap?debug=1", 200},
		{"admin goroutines", admin, "/debug/pprof/goroutine?debug=1", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.router.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Errorf("GET %s = %d, want %d", tt.path, rec.Code, tt.wantCode)
			}
		})
	}
}
