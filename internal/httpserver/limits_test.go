package httpserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

func TestLimitInFlight(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		blocked  int // requests held inside the handler
		wantCode int // of one more request
	}{
		{"below the cap", 3, 2, 200},
		{"at the cap: shed", 3, 3, 503},
		{"cap of one", 1, 1, 503},
		{"no cap", 0, 50, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, tt.blocked+1)
			r := newTestRouter(nil)
			g := r.Group("/", LimitInFlight(tt.max))
			g.GET("/work", func(c *gin.Context) {
				if c.Query("hold") != "" {
					entered <- struct{}{}
					<-release
				}
				c.String(200, "done")
			})
			var wg sync.WaitGroup
			codes := make(chan int, tt.blocked)
			for i := 0; i < tt.blocked; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec := httptest.NewRecorder()
					r.ServeHTTP(rec, httptest.NewRequest("GET", "/work?hold=1", nil))
					codes <- rec.Code
				}()
				<-entered
			}
			start := time.Now()
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/work", nil))
			if rec.Code != tt.wantCode {
				t.Errorf("request beyond %d held: %d %s, want %d", tt.blocked, rec.Code, rec.Body, tt.wantCode)
			}
			if tt.wantCode == 503 {
				if rec.Header().Get("Retry-After") != "1" || rec.Body.String() != `{"error":"overloaded, retry later"}` {
					t.Errorf("shed response: Retry-After %q, body %s", rec.Header().Get("Retry-After"), rec.Body)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("shed after %v, want at once", d)
				}
			}
			// Routes outside the group are never capped.
			rec = httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
			if rec.Code != 200 {
				t.Errorf("GET /health with the cap reached: %d", rec.Code)
			}
			close(release)
			wg.Wait()
			close(codes)
			for c := range codes {
				if c != 200 {
					t.Errorf("held request: %d, want 200", c)
				}
			}
			// The slots are given back.
			for i := 0; i < max(tt.max, 1)+1; i++ {
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, httptest.NewRequest("GET", "/work", nil))
				if rec.Code != 200 {
					t.Errorf("request %d after release: %d, want 200", i, rec.Code)
				}
			}
		})
	}
}

func TestAdminRouter(t *testing.T) {
	r := NewAdminRouter(zap.NewNop())
	tests := []struct {
		path     string
		wantCode int
	}{
		{"/health", 200},
		{"/debug/pprof/", 200},
		{"/debug/pprof/goroutine?debug=1", 200},
		{"/debug/pprof/cmdline", 200},
		{"/prometheus", 404},
		{"/metrics", 404},
		{"/ready", 404},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.wantCode {
			t.Errorf("admin GET %s = %d, want %d", tt.path, rec.Code, tt.wantCode)
		}
	}
}

// The write deadline starts when the headers are read, so it must outlast
// the body's upload (the body timeout) plus the handler; the admin
// server's must outlast pprof's default 30 s CPU profile.
func TestServerTimeouts(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), zap.NewNop(), DefaultBodyTimeout)
	long := NewServer(http.NotFoundHandler(), zap.NewNop(), 5*time.Minute)
	admin := NewAdminServer(http.NotFoundHandler(), zap.NewNop())
	const oneMiB = 1 << 20
	minRate := float64(oneMiB) / DefaultBodyTimeout.Seconds()
	tests := []struct {
		name string
		ok   bool
	}{
		{"read-header timeout set and short", srv.ReadHeaderTimeout > 0 && srv.ReadHeaderTimeout <= 10*time.Second},
		{"default body timeout at most 30 s", DefaultBodyTimeout <= 30*time.Second},
		{fmt.Sprintf("1 MiB fits the default body timeout at <= 40 KB/s (needs %.0f B/s)", minRate), minRate <= 40_000},
		{"read timeout outlasts headers and body", srv.ReadTimeout >= ReadHeaderTimeout+DefaultBodyTimeout},
		{"read timeout follows a long body timeout", long.ReadTimeout >= ReadHeaderTimeout+5*time.Minute},
		{"write timeout outlasts read timeout by 10 s", srv.WriteTimeout >= srv.ReadTimeout+10*time.Second},
		{"write timeout outlasts a long body by 10 s", long.WriteTimeout >= long.ReadTimeout+10*time.Second},
		{"idle timeout set", srv.IdleTimeout > 0},
		{"max header bytes 64 KiB", srv.MaxHeaderBytes == 64<<10},
		{"admin write timeout above 30 s profiles", admin.WriteTimeout > 30*time.Second+10*time.Second},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: server %+v", tt.name, srv)
		}
	}
}
