// Package loadgen generates HTTP load against Pulse's ingest and measures
// it: closed-loop workers (each sends its next request when the previous
// one is answered: the maximum throughput) and an open-loop scheduler
// (requests sent at a fixed rate whatever the server does, latency measured
// from each request's scheduled time, so a stalled server cannot hide its
// queueing: no coordinated omission).
//
// Request bodies are generated and encoded up front (Workload, Pool), so the
// generator spends its CPU on HTTP only. Every run is bounded both in
// requests and in time and stops by itself.
//
// The package also reads what the harness needs around a run: quantiles
// of scraped histograms (BucketQuantile) and per-process and machine CPU
// and memory from /proc (through github.com/prometheus/procfs).
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// NewClient returns an HTTP client for conns concurrent requests to one
// host: that many kept-alive connections at most, no compression, no proxy,
// each request bounded by timeout.
func NewClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Target is where a run sends and what.
type Target struct {
	Client *http.Client
	URL    string // e.g. http://127.0.0.1:8080/metrics
	Pool   *Pool
}

// Result is what a run measured.
type Result struct {
	Start    time.Time // the first request was due
	End      time.Time // the last one ended
	Requests int64     // requests that ended, whatever their outcome
	Accepted int64     // requests answered 202
	Events   int64     // events of the accepted requests
	// Errors counts failed requests by status code ("503") or "transport".
	Errors map[string]int64
	// Missed counts open-loop requests never sent: the run's time was up.
	Missed int64
	// Latency: closed loop, send to response; open loop, scheduled time to
	// response (queueing in the generator included).
	Latency *Histogram
	// SendDelay (open loop): scheduled time to send, the generator's own
	// lateness. Large values mean the generator, not the server, was slow.
	SendDelay *Histogram
	// PerSecond counts events accepted in each second after Start.
	PerSecond []int64
}

// Elapsed returns End - Start.
func (r *Result) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// EventsPerSecond returns the accepted events per second of the run.
func (r *Result) EventsPerSecond() float64 {
	if s := r.Elapsed().Seconds(); s > 0 {
		return float64(r.Events) / s
	}
	return 0
}

// Failed returns the number of requests that were not accepted.
func (r *Result) Failed() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// tally is one worker's share of a Result, merged at the end.
type tally struct {
	requests, accepted, events int64
	errors                     map[string]int64
	latency, sendDelay         *Histogram
}

func newTally() *tally {
	return &tally{errors: map[string]int64{}, latency: NewHistogram(), sendDelay: NewHistogram()}
}

// run collects the tallies of a run's workers.
type run struct {
	start     time.Time
	target    Target
	perSecond []atomic.Int64
	mu        sync.Mutex
	res       Result
}

func newRun(t Target, start time.Time, span time.Duration) *run {
	return &run{
		start:     start,
		target:    t,
		perSecond: make([]atomic.Int64, int(span/time.Second)+2),
		res:       Result{Start: start, Errors: map[string]int64{}, Latency: NewHistogram(), SendDelay: NewHistogram()},
	}
}

// send posts one body and records the outcome; latency runs from 'from'.
func (r *run) send(ctx context.Context, tl *tally, body []byte, from time.Time) {
	code, err := r.post(ctx, body)
	now := time.Now()
	tl.requests++
	tl.latency.Record(now.Sub(from))
	switch {
	case err != nil:
		tl.errors[errorKind(err)]++
	case code == http.StatusAccepted:
		tl.accepted++
		tl.events += int64(r.target.Pool.Events)
		if s := int(now.Sub(r.start) / time.Second); s >= 0 && s < len(r.perSecond) {
			r.perSecond[s].Add(int64(r.target.Pool.Events))
		}
	default:
		tl.errors[strconv.Itoa(code)]++
	}
}

func (r *run) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.target.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", r.target.Pool.ContentType)
	resp, err := r.target.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), os.IsTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	}
	return "transport"
}

func (r *run) merge(tl *tally) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Requests += tl.requests
	r.res.Accepted += tl.accepted
	r.res.Events += tl.events
	for k, v := range tl.errors {
		r.res.Errors[k] += v
	}
	r.res.Latency.Merge(tl.latency)
	r.res.SendDelay.Merge(tl.sendDelay)
}

func (r *run) result(end time.Time) Result {
	res := r.res
	res.End = end
	last := int(end.Sub(r.start)/time.Second) + 1
	for i := 0; i < len(r.perSecond) && i < last; i++ {
		res.PerSecond = append(res.PerSecond, r.perSecond[i].Load())
	}
	return res
}

// Closed configures a closed-loop run.
type Closed struct {
	Concurrency int           // workers, each with one request in flight
	Duration    time.Duration // no request starts after this
	MaxRequests int64         // nor after this many were started
}

// RunClosed runs Concurrency workers, each posting the pool's bodies in
// turn as fast as the server answers, until Duration has passed or
// MaxRequests were sent, and returns when the last request has ended.
func RunClosed(ctx context.Context, t Target, c Closed) (Result, error) {
	if c.Concurrency < 1 || c.Duration <= 0 || c.MaxRequests < 1 {
		return Result{}, errors.New("loadgen: closed loop needs Concurrency, Duration and MaxRequests > 0")
	}
	start := time.Now()
	deadline := start.Add(c.Duration)
	// In-flight requests may finish after the deadline, but not for long.
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(requestTimeout(t.Client)))
	defer cancel()
	r := newRun(t, start, c.Duration+requestTimeout(t.Client))
	var next atomic.Int64
	wait := r.workers(c.Concurrency, func(tl *tally) {
		for ctx.Err() == nil && time.Now().Before(deadline) {
			i := next.Add(1) - 1
			if i >= c.MaxRequests {
				return
			}
			r.send(ctx, tl, t.Pool.Body(i), time.Now())
		}
	})
	wait()
	return r.result(time.Now()), nil
}

// workers runs work in n goroutines, each counting in a tally of its own
// that is merged into r when its work returns; the function returned
// waits for all of them.
func (r *run) workers(n int, work func(tl *tally)) (wait func()) {
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := newTally()
			defer r.merge(tl)
			work(tl)
		}()
	}
	return wg.Wait
}

// Open configures an open-loop run.
type Open struct {
	Rate        float64       // requests per second
	Duration    time.Duration // requests are scheduled over this span: Rate·Duration of them
	MaxInFlight int           // requests in flight at most; later ones wait (and their wait counts)
	// Grace is how long after the last scheduled time requests may still
	// be sent and answered; what is not sent by then counts as Missed.
	Grace time.Duration
}

// Requests returns the number of requests the run schedules.
func (o Open) Requests() int64 { return int64(o.Rate * o.Duration.Seconds()) }

// Scheduled returns when request i of a run at rate requests per second
// that starts at start is due: start + i/rate.
func Scheduled(start time.Time, i int64, rate float64) time.Time {
	return start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
}

// RunOpen sends request i at Scheduled(start, i, Rate), whatever the
// answers to earlier ones, with at most MaxInFlight in flight. Each
// request's latency runs from its scheduled time, so time spent waiting for
// a free worker or connection, because the server is slow, is counted.
func RunOpen(ctx context.Context, t Target, o Open) (Result, error) {
	n := o.Requests()
	if o.Rate <= 0 || n < 1 || o.MaxInFlight < 1 {
		return Result{}, errors.New("loadgen: open loop needs Rate, Duration and MaxInFlight > 0")
	}
	grace := max(o.Grace, requestTimeout(t.Client))
	start := time.Now().Add(10 * time.Millisecond)
	ctx, cancel := context.WithDeadline(ctx, start.Add(o.Duration+grace))
	defer cancel()
	r := newRun(t, start, o.Duration+grace)

	type job struct {
		i  int64
		at time.Time
	}
	jobs := make(chan job, o.MaxInFlight)
	wait := r.workers(o.MaxInFlight, func(tl *tally) {
		for j := range jobs {
			if ctx.Err() != nil {
				tl.errors["timeout"]++
				tl.requests++
				continue
			}
			tl.sendDelay.Record(time.Since(j.at))
			r.send(ctx, tl, t.Pool.Body(j.i), j.at)
		}
	})
	var sent int64
	timer := time.NewTimer(0)
	<-timer.C
dispatch:
	for ; sent < n; sent++ {
		at := Scheduled(start, sent, o.Rate)
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dispatch
			}
		}
		select {
		case jobs <- job{sent, at}:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wait()
	res := r.result(time.Now())
	res.Missed = n - sent
	return res, nil
}

func requestTimeout(c *http.Client) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}
