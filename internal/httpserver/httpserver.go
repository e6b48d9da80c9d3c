// Package httpserver is the HTTP scaffolding every Pulse service shares: a
// gin router with logging, recovery and Prometheus middleware, the
// /health, /ready and /prometheus endpoints, and a server that shuts down
// gracefully when its context ends.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/pulse-iot/pulse/internal/instrument"
)

// Options configure a router.
type Options struct {
	Service  string
	Log      *zap.Logger
	Registry *prometheus.Registry
	// Ready reports whether the service can do its work (Redis answers).
	Ready func(ctx context.Context) error
	// MetricsAuth, when set, guards /prometheus (the read-token check):
	// the metrics tell as much about the fleet as the query endpoints.
	MetricsAuth gin.HandlerFunc
}

// NewRouter returns a gin engine with the shared middleware and endpoints;
// the service adds its own routes to it.
func NewRouter(o Options) *gin.Engine {
	// gin's debug mode prints every route to stdout; our logs are zap's.
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	m := newHTTPMetrics(o.Service, o.Registry)
	r.Use(m.middleware(), recovery(o.Log))
	r.NoRoute(func(c *gin.Context) { Error(c, http.StatusNotFound, "not found", nil) })
	r.NoMethod(func(c *gin.Context) { Error(c, http.StatusMethodNotAllowed, "method not allowed", nil) })
	r.HandleMethodNotAllowed = true

	// HEAD as GET without a body (net/http drops it): load balancers
	// probe with HEAD.
	health := func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "healthy"})
	}
	ready := func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		defer cancel()
		if err := o.Ready(ctx); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
	r.GET("/health", health)
	r.HEAD("/health", health)
	r.GET("/ready", ready)
	r.HEAD("/ready", ready)
	// ContinueOnError: a collector that cannot reach Redis must not turn
	// the whole scrape into a 500, or a Redis outage looks like this
	// service being down.
	prom := promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry, ErrorHandling: promhttp.ContinueOnError})
	if o.MetricsAuth != nil {
		r.GET("/prometheus", o.MetricsAuth, gin.WrapH(prom))
	} else {
		r.GET("/prometheus", gin.WrapH(prom))
	}
	return r
}

// NewRegistry returns a registry of the service's own, with the Go runtime
// and process collectors: no global registry anywhere.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

// WriteJSON answers status with v as JSON, encoded before anything is
// written: a value JSON cannot express (NaN, ±Inf) gives a 500 with a
// JSON error and a log line, never a 200 with an empty or cut body.
func WriteJSON(c *gin.Context, log *zap.Logger, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Error("encode response", zap.String("route", c.FullPath()), zap.Error(err))
		Error(c, http.StatusInternalServerError, "internal error", nil)
		return
	}
	c.Data(status, "application/json; charset=utf-8", b)
}

// Error writes a JSON error response and stops the handler chain.
func Error(c *gin.Context, status int, msg string, details any) {
	c.AbortWithStatusJSON(status, ErrorBody{Error: msg, Details: details})
}

func recovery(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic in handler", zap.Any("panic", p), zap.String("route", c.FullPath()), zap.Stack("stack"))
				Error(c, http.StatusInternalServerError, "internal error", nil)
			}
		}()
		c.Next()
	}
}

type httpMetrics struct {
	service  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rate     *rateMeter
}

func newHTTPMetrics(service string, reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		service: service,
		requests: instrument.CounterVec(reg, "http_requests_total", "HTTP requests served, by route and status code.",
			"service", "method", "route", "code"),
		duration: instrument.HistogramVec(reg, "http_request_duration_seconds", "Time to serve HTTP requests, by route.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}, "service", "method", "route"),
		rate: &rateMeter{},
	}
	instrument.GaugeFunc(reg, "current_rps", "Requests per second this process served, averaged over the last 10 seconds.",
		func() float64 { return m.rate.rate(time.Now()) })
	return m
}

func (m *httpMetrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		// Label values come from fixed sets only: the request decides
		// which, never what, so no client can add series.
		route := c.FullPath() // a registered pattern
		if route == "" {
			route = "unmatched"
		}
		method := methodLabel(c.Request.Method)
		m.requests.WithLabelValues(m.service, method, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(m.service, method, route).Observe(time.Since(start).Seconds())
		m.rate.add(start)
	}
}

// methodLabel is method when it is one of the methods of RFC 9110 and
// PATCH, "other" otherwise: net/http accepts any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// rateMeter counts events in one-second buckets and reports the mean rate
// over the last complete seconds.
type rateMeter struct {
	mu      sync.Mutex
	secs    [rateWindow + 1]int64
	buckets [rateWindow + 1]int64
}

const rateWindow = 10

func (r *rateMeter) add(now time.Time) {
	sec := now.Unix()
	i := sec % int64(len(r.secs))
	r.mu.Lock()
	if r.secs[i] != sec {
		r.secs[i], r.buckets[i] = sec, 0
	}
	r.buckets[i]++
	r.mu.Unlock()
}

func (r *rateMeter) rate(now time.Time) float64 {
	cur := now.Unix()
	var n int64
	r.mu.Lock()
	for i := range r.secs {
		if s := r.secs[i]; s < cur && s >= cur-rateWindow {
			n += r.buckets[i]
		}
	}
	r.mu.Unlock()
	return float64(n) / rateWindow
}

// Server limits (see docs/SECURITY.md). A request's
// headers must arrive within ReadHeaderTimeout and its body within the
// body timeout (BODY_TIMEOUT, DefaultBodyTimeout) of the end of the
// headers: a slower body is answered 408 and its connection closed. 30 s
// carry a 1 MiB body (MAX_BODY_BYTES' default) at 35 KB/s (280 kbit/s)
// uncompressed, or a gzip'ed one several times slower. The write deadline
// runs from the end of the headers to the end of the response, so it
// covers the body's upload too and is set above ReadTimeout by the time a
// handler may wait on Redis.
const (
	ReadHeaderTimeout  = 5 * time.Second
	DefaultBodyTimeout = 30 * time.Second
	IdleTimeout        = 120 * time.Second
	MaxHeaderBytes     = 64 << 10
	handlerMargin      = 15 * time.Second
)

// ReadTimeout is the whole request's limit for a body timeout: a
// backstop, as the guard sets each body's own deadline.
func ReadTimeout(bodyTimeout time.Duration) time.Duration {
	return ReadHeaderTimeout + bodyTimeout
}

// WriteTimeout is the response's limit for a body timeout.
func WriteTimeout(bodyTimeout time.Duration) time.Duration {
	return ReadTimeout(bodyTimeout) + handlerMargin
}

// NewServer returns an http.Server with the limits above, serving h
// behind the guard (ambiguous framing, body timeout). Serve it with Serve,
// which gives the guard the connections' bytes.
func NewServer(h http.Handler, log *zap.Logger, bodyTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           guard(h, bodyTimeout),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout(bodyTimeout),
		WriteTimeout:      WriteTimeout(bodyTimeout),
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnContext:       connContext,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// Serve serves on ln until ctx ends, then stops accepting connections and
// waits up to drain for in-flight requests to finish.
func Serve(ctx context.Context, log *zap.Logger, srv *http.Server, ln net.Listener, drain time.Duration) error {
	log.Info("listening", zap.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(framedListener{ln}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("drain", drain))
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Listeners are a service's HTTP listeners: the public one and, when
// AdminAddr is set, the admin one (profiles, /health).
type Listeners struct {
	Addr      string       // HTTP_ADDR
	Public    *http.Server // served on Addr
	Drain     time.Duration
	AdminAddr string // ADMIN_ADDR; "" for none
}

// adminDrain bounds the admin listener's shutdown: profiles are cut short.
const adminDrain = 5 * time.Second

// ServeAll listens on l's addresses and serves them, with jobs (the
// service's background loops) beside them, until ctx ends: if any of them
// fails, all stop, and each stops with ctx.
func ServeAll(ctx context.Context, log *zap.Logger, l Listeners, jobs ...func(context.Context) error) error {
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", l.Addr, err)
	}
	var adminLn net.Listener
	if l.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", l.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen %s (ADMIN_ADDR): %w", l.AdminAddr, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, job := range jobs {
		g.Go(func() error { return job(gctx) })
	}
	g.Go(func() error { return Serve(gctx, log, l.Public, ln, l.Drain) })
	if adminLn != nil {
		alog := log.Named("admin")
		g.Go(func() error {
			return Serve(gctx, alog, NewAdminServer(NewAdminRouter(alog), alog), adminLn, adminDrain)
		})
	}
	return g.Wait()
}
