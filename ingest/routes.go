package main

import (
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/auth"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/ratelimit"
)

// addRoutes adds ingest's own routes. They pass, in order, the client's
// rate limit (429), the API key (401), the backlog gate (503) and the cap
// on requests in flight (503), cheapest and least revealing first: a
// client without a key learns nothing of the backlog. /health, /ready and
// /prometheus (NewRouter's) pass none of them, so probes and scrapes work
// whatever the load.
func addRoutes(r *gin.Engine, cfg config.Config, pub publisher, keys *auth.Set, gate *backlogGate, m *ingestMetrics, log *zap.Logger) {
	var limiter *ratelimit.Limiter
	if cfg.RateLimit > 0 {
		limiter = ratelimit.New(cfg.RateLimit, cfg.RateBurst)
	}
	g := r.Group("/", ratelimit.Middleware(limiter), auth.Middleware(keys), gate.Middleware(), httpserver.LimitInFlight(cfg.MaxInflight))
	g.POST("/metrics", handlePostMetrics(pub, cfg, m, log))
}
