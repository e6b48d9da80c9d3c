// Package httpserver is the HTTP scaffolding every Pulse service shares: a
// gin router with logging, recovery and Prometheus middleware, the
// /health, /ready and /prometheus endpoints, and a server that shuts down
// gracefully when its context ends.
package httpserver

import (
	"context"
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
)

// Options configure a router.
type Options struct {
	Service  string
	Log      *zap.Logger
	Registry *prometheus.Registry
	// Ready reports whether the service can do its work (Redis answers).
	Ready func(ctx context.Context) error
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

	r.GET("/health", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "healthy"})
	})
	r.GET("/ready", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		defer cancel()
		if err := o.Ready(ctx); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	// ContinueOnError: a collector that cannot reach Redis must not turn
	// the whole scrape into a 500, or a Redis outage looks like this
	// service being down.
	prom := promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry, ErrorHandling: promhttp.ContinueOnError})
	r.GET("/prometheus", gin.WrapH(prom))
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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"service", "method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"service", "method", "route"}),
		rate: &rateMeter{},
	}
	reg.MustRegister(m.requests, m.duration, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "current_rps",
		Help: "Requests per second this process served, averaged over the last 10 seconds.",
	}, func() float64 { return m.rate.rate(time.Now()) }))
	return m
}

func (m *httpMetrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched" // keeps label values bounded
		}
		method := c.Request.Method
		m.requests.WithLabelValues(m.service, method, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(m.service, method, route).Observe(time.Since(start).Seconds())
		m.rate.add(start)
	}
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
// headers must arrive within ReadHeaderTimeout and the whole request
// within ReadTimeout: 60 s carry a 1 MiB body (MAX_BODY_BYTES' default)
// at 17.5 KB/s (140 kbit/s) uncompressed, or a gzip'ed one several times
// slower, while a client that trickles bytes is cut after a minute. The
// write deadline runs from the end of the headers to the end of the
// response, so it covers the body's upload too and is set above
// ReadTimeout by the time a handler may wait on Redis.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 75 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns an http.Server with the limits above.
func NewServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// Serve serves on ln until ctx ends, then stops accepting connections and
// waits up to drain for in-flight requests to finish.
func Serve(ctx context.Context, log *zap.Logger, srv *http.Server, ln net.Listener, drain time.Duration) error {
	log.Info("listening", zap.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
