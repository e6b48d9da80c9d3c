package httpserver

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// Overloaded is the error message of a request shed by LimitInFlight.
const Overloaded = "overloaded, retry later"

// LimitInFlight lets at most n requests at once through the handlers that
// follow it. The next one is answered at once, never queued: 503
// {"error":"overloaded, retry later"} with Retry-After: 1, so that a
// burst beyond capacity is shed instead of piling up goroutines, memory
// and latency for everyone. n <= 0: no cap.
func LimitInFlight(n int) gin.HandlerFunc {
	if n <= 0 {
		return func(c *gin.Context) { c.Next() }
	}
	slots := make(chan struct{}, n)
	return func(c *gin.Context) {
		select {
		case slots <- struct{}{}:
		default:
			c.Header("Retry-After", "1")
			Error(c, http.StatusServiceUnavailable, Overloaded, nil)
			return
		}
		defer func() { <-slots }()
		c.Next()
	}
}

// NewAdminRouter returns the router of an admin listener: /health and the
// runtime profiles under /debug/pprof, nothing else. It is never the
// public router: profiles reveal internals and cost CPU.
func NewAdminRouter(log *zap.Logger) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(recovery(log))
	r.NoRoute(func(c *gin.Context) { Error(c, http.StatusNotFound, "not found", nil) })
	health := func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "healthy"})
	}
	r.GET("/health", health)
	r.HEAD("/health", health)
	AddPprof(r)
	return r
}

// NewAdminServer returns the server of an admin listener: as NewServer,
// but with a write timeout long enough for the default 30 s CPU profile
// (net/http/pprof refuses a profile as long as the write timeout).
func NewAdminServer(h http.Handler, log *zap.Logger) *http.Server {
	srv := NewServer(h, log, DefaultBodyTimeout)
	srv.WriteTimeout = 2*time.Minute + 5*time.Second
	return srv
}
