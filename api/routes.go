package main

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/auth"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/ratelimit"
)

// addRoutes adds the query routes. They pass, in order, the client's rate
// limit (429), the read token (401) and the cap on requests in flight
// (503). /health, /ready and /prometheus (NewRouter's) pass none of them,
// so probes and scrapes work whatever the load.
func addRoutes(r *gin.Engine, cfg config.Config, store resultStore, tokens *auth.Set, log *zap.Logger) {
	var limiter *ratelimit.Limiter
	if cfg.RateLimit > 0 {
		limiter = ratelimit.New(cfg.RateLimit, cfg.RateBurst)
	}
	g := r.Group("/", ratelimit.Middleware(limiter), auth.Middleware(tokens), httpserver.LimitInFlight(cfg.MaxInflight),
		redisDeadline(cfg.RedisTimeout))
	g.GET("/analyze", handleAnalyze(store, cfg.WindowSize, log))
	g.GET("/anomalies", handleAnomalies(store, log))
	g.GET("/alerts", handleAlerts(store, log))
	g.GET("/devices", handleDevices(store, log))
	g.GET("/signals", handleSignals(store, log))
	g.GET("/tags", handleTags(store, log))
}

// redisDeadline bounds a query's time on Redis: an unreachable or stalled
// Redis gives a 503 after REDIS_TIMEOUT, never a hang.
func redisDeadline(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), d)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
