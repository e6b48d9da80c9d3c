package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

type httpResult struct {
	status  int
	body    string
	header  http.Header
	elapsed time.Duration
	err     error
}

func do(method, url, body string) httpResult {
	start := time.Now()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return httpResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpResult{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpResult{status: resp.StatusCode, body: string(b), header: resp.Header, elapsed: time.Since(start), err: err}
}

// streamHas reports whether srv's stream of deviceID under prefix holds
// an event of deviceID with rps.
func streamHas(t *testing.T, rdb *redis.Client, prefix string, shards int, deviceID string, rps float64) bool {
	t.Helper()
	key := shard.Keys{Prefix: prefix}.Stream(shard.For(deviceID, shards))
	msgs, err := rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("xrange %s: %v", key, err)
	}
	for _, m := range msgs {
		e, err := stream.Decode(m.Values)
		if err != nil {
			t.Fatalf("entry %s: %v", m.ID, err)
		}
		if e.DeviceID == deviceID && e.RPS == rps {
			return true
		}
	}
	return false
}

func metricBody(device string, rps int) string {
	return fmt.Sprintf(`{"device_id":%q,"cpu":10,"rps":%d}`, device, rps)
}

// Redis dies and comes back: ingest answers 503 with Retry-After within
// REDIS_TIMEOUT (never hangs), reports not ready, stays healthy, and
// accepts again once Redis is back, without a restart.
func TestIngestSurvivesRedisRestart(t *testing.T) {
	srv := redistest.StartTest(t)
	env := baseEnv(t, srv, "REDIS_TIMEOUT=1s")
	const bound = 1*time.Second + 1*time.Second // REDIS_TIMEOUT + slack
	in := startIngest(t, env)
	rdb := srv.Client()
	defer rdb.Close()

	if r := do("POST", in.URL+"/metrics", metricBody("before", 1)); r.err != nil || r.status != 202 {
		t.Fatalf("POST before the outage: %d %s %v", r.status, r.body, r.err)
	}
	if !streamHas(t, rdb, env["KEY_PREFIX"], 4, "before", 1) {
		t.Fatal("202 but the event is not in its stream")
	}
	if r := do("GET", in.URL+"/ready", ""); r.status != 200 {
		t.Fatalf("GET /ready before the outage: %d %s %v", r.status, r.body, r.err)
	}

	srv.Kill()
	for i := 0; i < 3; i++ { // the first may fail on a pooled connection, the next on dialling
		r := do("POST", in.URL+"/metrics", metricBody("during", i))
		if r.err != nil || r.status != 503 {
			t.Fatalf("POST %d with Redis down: %d %s %v, want 503", i, r.status, r.body, r.err)
		}
		if r.elapsed > bound {
			t.Errorf("POST %d with Redis down took %v, want at most REDIS_TIMEOUT + 1s = %v", i, r.elapsed, bound)
		}
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("Retry-After %q, want a positive number of seconds", r.header.Get("Retry-After"))
		}
		var body errorBody
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == "" {
			t.Errorf("503 body %q: want a JSON error", r.body)
		}
	}
	if r := do("GET", in.URL+"/ready", ""); r.status != 503 || r.elapsed > bound {
		t.Errorf("GET /ready with Redis down: %d in %v, want 503 within %v", r.status, r.elapsed, bound)
	}
	if r := do("GET", in.URL+"/health", ""); r.status != 200 || r.body != `{"status":"healthy"}` {
		t.Errorf("GET /health with Redis down: %d %s, want 200 {\"status\":\"healthy\"}", r.status, r.body)
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	rps := 100
	poll.Until(t, 10*time.Second, "POST accepted after Redis restarted", func() (bool, string) {
		rps++
		r := do("POST", in.URL+"/metrics", metricBody("after", rps))
		return r.status == 202, fmt.Sprintf("%d %s %v", r.status, r.body, r.err)
	})
	if !streamHas(t, rdb, env["KEY_PREFIX"], 4, "after", float64(rps)) {
		t.Error("202 after the restart but the event is not in its stream")
	}
	poll.Until(t, 10*time.Second, "ready after Redis restarted", func() (bool, string) {
		r := do("GET", in.URL+"/ready", "")
		return r.status == 200, fmt.Sprintf("%d %s %v", r.status, r.body, r.err)
	})
	expo := do("GET", in.URL+"/prometheus", "")
	if v, _ := promtext.Value(t, expo.body, "pulse_events_rejected_total", map[string]string{"reason": "unavailable"}); v < 3 {
		t.Errorf(`pulse_events_rejected_total{reason="unavailable"} = %v, want at least the 3 refused requests`, v)
	}
}

// Redis answers too slowly: 503 within REDIS_TIMEOUT, then 202 once it
// is fast again.
func TestIngestAnswers503WhenRedisIsTooSlow(t *testing.T) {
	srv := redistest.StartTest(t)
	env := baseEnv(t, srv, "REDIS_TIMEOUT=500ms")
	const bound = 500*time.Millisecond + 1*time.Second
	in := startIngest(t, env)
	if r := do("POST", in.URL+"/metrics", metricBody("warm", 1)); r.status != 202 {
		t.Fatalf("POST before the pause: %d %s %v", r.status, r.body, r.err)
	}

	srv.PauseWrites(t, 3*time.Second)
	r := do("POST", in.URL+"/metrics", metricBody("slow", 1))
	if r.err != nil || r.status != 503 {
		t.Fatalf("POST while Redis is paused: %d %s %v, want 503", r.status, r.body, r.err)
	}
	if r.elapsed > bound {
		t.Errorf("POST while Redis is paused took %v, want at most REDIS_TIMEOUT + 1s = %v", r.elapsed, bound)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	srv.Unpause()
	poll.Until(t, 10*time.Second, "POST accepted once Redis is fast again", func() (bool, string) {
		r := do("POST", in.URL+"/metrics", metricBody("fast", 2))
		return r.status == 202, fmt.Sprintf("%d %s %v", r.status, r.body, r.err)
	})
}

// A request in flight when shutdown begins is finished: it gets its 202,
// its event is stored, and run returns nil.
func TestIngestDrainsInFlightRequestOnShutdown(t *testing.T) {
	srv := redistest.StartTest(t)
	env := baseEnv(t, srv)
	in := startIngest(t, env)
	ctx := context.Background()

	srv.PauseWrites(t, 700*time.Millisecond)
	res := make(chan httpResult, 1)
	go func() { res <- do("POST", in.URL+"/metrics", metricBody("draining", 42)) }()
	// In flight: ingest's XADD is held by the pause.
	poll.Until(t, 5*time.Second, "the POST's XADD waiting on the paused Redis", func() (bool, string) {
		n, err := srv.Blocked(ctx, "xadd")
		return n > 0, fmt.Sprintf("%d XADDs blocked (%v)", n, err)
	})
	in.Cancel()

	r := <-res
	if r.err != nil || r.status != 202 {
		t.Fatalf("POST in flight at shutdown: %d %s %v, want 202", r.status, r.body, r.err)
	}
	if err := in.Wait(t, 20*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	rdb := srv.Client()
	defer rdb.Close()
	if !streamHas(t, rdb, env["KEY_PREFIX"], 4, "draining", 42) {
		t.Error("202 at shutdown but the event is not in its stream")
	}
	if r := do("POST", in.URL+"/metrics", metricBody("late", 1)); r.err == nil {
		t.Errorf("POST after run returned: %d, want a refused connection", r.status)
	}
}

func TestIngestRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	proctest.RunRejects(t, run, func(t *testing.T) map[string]string { return baseEnv(t, redisSrv) },
		"SHARDS=0",
		"SHARDS=many",
		"REDIS_TIMEOUT=abc",
		"REDIS_TIMEOUT=-1s",
		"MAX_BATCH=x",
		"MAX_BATCH=0",
		"MAX_BODY_BYTES=10",
		"KEY_PREFIX=has space",
		"REDIS_ADDR=no-port",
		"HTTP_ADDR=nowhere",
		"LOG_LEVEL=loud",
		"LOG_FORMAT=xml",
	)
}

// run serves the real router: a POST through it is stored, and canceling
// its context stops it with nil.
func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, redisSrv)
	in := startIngest(t, env)
	if r := do("GET", in.URL+"/health", ""); r.status != 200 || r.body != `{"status":"healthy"}` {
		t.Errorf("GET /health: %d %s %v", r.status, r.body, r.err)
	}
	r := do("POST", in.URL+"/metrics", `[{"device_id":"run-1","cpu":1,"rps":5},{"device_id":"run-2","cpu":2,"rps":6}]`)
	if r.status != 202 || !reflect.DeepEqual(jsonValue(t, []byte(r.body)), jsonValue(t, []byte(`{"status":"ok","accepted":2}`))) {
		t.Errorf("POST: %d %s %v", r.status, r.body, r.err)
	}
	rdb := redisSrv.Client()
	defer rdb.Close()
	if !streamHas(t, rdb, env["KEY_PREFIX"], 4, "run-1", 5) || !streamHas(t, rdb, env["KEY_PREFIX"], 4, "run-2", 6) {
		t.Error("202 but the events are not in their streams")
	}
	expo := do("GET", in.URL+"/prometheus", "")
	if v, _ := promtext.Value(t, expo.body, "http_requests_total",
		map[string]string{"service": "ingest", "method": "POST", "route": "/metrics", "code": "202"}); v != 1 {
		t.Errorf(`http_requests_total{service="ingest",route="/metrics",code="202"} = %v, want 1`, v)
	}
	in.Cancel()
	if err := in.Wait(t, 20*time.Second); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
}

// Many requests time out on a paused Redis while others are served: each
// timed-out POST gets its 503 with Retry-After within REDIS_TIMEOUT, the
// others are unaffected, and POSTs succeed once Redis resumes. Under -race
// this is also the regression test of a handler that derived its Redis
// deadline from gin's pooled Context, which the deadline's timer read after
// gin had handed it to another request.
func TestIngestTimeoutsUnderConcurrentLoad(t *testing.T) {
	srv := redistest.StartTest(t)
	env := baseEnv(t, srv, "REDIS_TIMEOUT=50ms")
	const bound = 50*time.Millisecond + time.Second
	in := newTestIngest(t, env)
	srv.PauseWrites(t, 10*time.Second)
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	stop := time.Now().Add(time.Second)
	for g := 0; g < 8; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				start := time.Now()
				rec := post(in.handler, nil, []byte(metricBody("paused", g)))
				if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || time.Since(start) > bound {
					errs <- fmt.Sprintf("POST on paused Redis: %d (Retry-After %q) in %v, want 503 with Retry-After within %v",
						rec.Code, rec.Header().Get("Retry-After"), time.Since(start), bound)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				rec := httptest.NewRecorder()
				in.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
				if rec.Code != 200 {
					errs <- fmt.Sprintf("GET /health while Redis is paused: %d", rec.Code)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	srv.Unpause()
	poll.Until(t, 10*time.Second, "POST accepted once Redis resumes", func() (bool, string) {
		rec := post(in.handler, nil, []byte(metricBody("resumed", 1)))
		return rec.Code == 202, fmt.Sprintf("%d %s", rec.Code, rec.Body)
	})
}
