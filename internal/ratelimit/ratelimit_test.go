package ratelimit

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// clock is a manual clock for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(rate float64, burst int) (*Limiter, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(rate, burst)
	l.now = c.now
	return l, c
}

type step struct {
	advance  time.Duration // before the call
	key      string
	wantOK   bool
	wantWait time.Duration // when refused
}

func TestTokenBucket(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refused, refill one per 1/rate", 5, 5, []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{0, "a", false, 200 * time.Millisecond},
			{100 * time.Millisecond, "a", false, 100 * time.Millisecond},
			{100 * time.Millisecond, "a", true, 0},
			{0, "a", false, 200 * time.Millisecond},
		}},
		{"clients are independent", 1, 1, []step{
			{0, "a", true, 0}, {0, "a", false, time.Second},
			{0, "b", true, 0}, {0, "b", false, time.Second},
		}},
		{"refill stops at burst", 10, 2, []step{
			{0, "a", true, 0}, {0, "a", true, 0},
			{time.Hour, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 100 * time.Millisecond},
		}},
		{"slow rate: wait of seconds", 0.5, 1, []step{
			{0, "a", true, 0}, {0, "a", false, 2 * time.Second},
			{1500 * time.Millisecond, "a", false, 500 * time.Millisecond},
		}},
		{"a clock going back refills nothing", 1, 1, []step{
			{0, "a", true, 0}, {-time.Minute, "a", false, time.Second},
		}},
		{"burst 0 means 1", 1, 0, []step{
			{0, "a", true, 0}, {0, "a", false, time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, c := newTestLimiter(tt.rate, tt.burst)
			for i, s := range tt.steps {
				c.advance(s.advance)
				ok, wait := l.Allow(s.key)
				if ok != s.wantOK || (!ok && (wait-s.wantWait).Abs() > time.Microsecond) {
					t.Errorf("step %d (%s after %v): Allow = %v, %v; want %v, %v", i, s.key, s.advance, ok, wait, s.wantOK, s.wantWait)
				}
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {time.Nanosecond, 1}, {200 * time.Millisecond, 1}, {time.Second, 1},
		{time.Second + time.Nanosecond, 2}, {2500 * time.Millisecond, 3},
	}
	for _, tt := range tests {
		if got := RetryAfterSeconds(tt.wait); got != tt.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

// The table of clients stays within max: idle (full) buckets go first,
// then the least recently seen.
func TestClientTableIsBounded(t *testing.T) {
	l, c := newTestLimiter(1, 2) // a bucket is full again 2s after its last use
	l.max = 3
	for i := 0; i < 3; i++ {
		l.Allow(fmt.Sprint("c", i))
	}
	if l.Len() != 3 {
		t.Fatalf("Len = %d, want 3", l.Len())
	}
	// Full table, nobody idle: the least recently seen (c0) goes.
	l.Allow("c1")
	l.Allow("c3")
	if _, ok := l.clients["c0"]; ok || l.Len() != 3 {
		t.Errorf("after a 4th client: c0 kept %v, Len %d; want c0 dropped, 3", ok, l.Len())
	}
	// c1 took its second token: it is empty and remembered as such.
	if ok, _ := l.Allow("c1"); ok {
		t.Error("c1 allowed a third request in a burst of 2")
	}
	// Idle buckets are dropped as calls come, without filling the table.
	c.advance(3 * time.Second)
	for i := 0; i < 10; i++ {
		l.Allow("busy")
	}
	if l.Len() != 1 {
		t.Errorf("after the others idled: Len = %d, want only the busy client", l.Len())
	}
	// A hundred thousand distinct clients: memory stays at max.
	for i := 0; i < 100_000; i++ {
		l.Allow(strconv.Itoa(i))
	}
	if l.Len() > 3 || len(l.clients) != l.order.Len() {
		t.Errorf("after 100000 clients: Len = %d (list %d), want at most 3", l.Len(), l.order.Len())
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.1:5555", "192.0.2.1"},
		{"192.0.2.1:6666", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"unix-socket", "unix-socket"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ClientKey(tt.remote); got != tt.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

func TestMiddleware(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	l, c := newTestLimiter(1, 2)
	r := gin.New()
	r.GET("/x", Middleware(l), func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/free", Middleware(nil), func(c *gin.Context) { c.String(200, "ok") })
	tests := []struct {
		advance    time.Duration
		path       string
		remote     string
		wantCode   int
		wantRetry  string
		wantBodyOf string
	}{
		{0, "/x", "10.0.0.1:1000", 200, "", "ok"},
		{0, "/x", "10.0.0.1:1001", 200, "", "ok"}, // another port, same client
		{0, "/x", "10.0.0.1:1002", 429, "1", `{"error":"rate limit exceeded, retry later"}`},
		{0, "/x", "10.0.0.2:1000", 200, "", "ok"},
		{time.Second, "/x", "10.0.0.1:1003", 200, "", "ok"},
		{0, "/free", "10.0.0.1:1004", 200, "", "ok"},
	}
	for i, tt := range tests {
		c.advance(tt.advance)
		req := httptest.NewRequest("GET", tt.path, nil)
		req.RemoteAddr = tt.remote
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)) // ignored
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tt.wantCode || rec.Header().Get("Retry-After") != tt.wantRetry || rec.Body.String() != tt.wantBodyOf {
			t.Errorf("request %d from %s: %d %q (Retry-After %q), want %d %q (%q)", i, tt.remote, rec.Code, rec.Body,
				rec.Header().Get("Retry-After"), tt.wantCode, tt.wantBodyOf, tt.wantRetry)
		}
	}
}
