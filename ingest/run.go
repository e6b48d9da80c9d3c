package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/auth"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/logging"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/shard"
)

// drainTimeout bounds how long shutdown waits for in-flight requests; a
// request waits on Redis at most REDIS_TIMEOUT, so it is added to this.
const drainTimeout = 10 * time.Second

// keyReloadInterval is how often the key file is checked for changes.
const keyReloadInterval = time.Second

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(config.Ingest, getenv)
	if err != nil {
		return err
	}
	log, err := logging.Start(cfg, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	reg := httpserver.NewRegistry()
	rdb := redisx.NewFromConfig(cfg, 4*publishWriters, reg)
	defer rdb.Close()
	svc, err := wire(cfg, log, reg, rdb)
	if err != nil {
		return err
	}
	defer svc.pub.Close() // after the server has drained: no request is left waiting
	return httpserver.ServeAll(ctx, log, httpserver.Listeners{
		Addr: cfg.HTTPAddr, Public: httpserver.NewServer(svc.router, log, cfg.BodyTimeout),
		Drain: drainTimeout + cfg.RedisTimeout, AdminAddr: cfg.AdminAddr,
	}, svc.jobs...)
}

// service is ingest as run serves it and the tests drive it.
type service struct {
	router *gin.Engine
	pub    *redisPublisher // Close it after the server has drained
	gate   *backlogGate
	jobs   []func(context.Context) error // background loops beside the server
}

// wire builds ingest on rdb: the publisher, the backlog gate, auth and
// the routes.
func wire(cfg config.Config, log *zap.Logger, reg *prometheus.Registry, rdb redis.UniversalClient) (*service, error) {
	keys, err := auth.NewSet(cfg.APIKeys, cfg.APIKeysFile, log.Named("auth"))
	if err != nil {
		return nil, fmt.Errorf("API_KEYS_FILE: %w", err)
	}
	tokens, err := auth.NewSet(cfg.ReadTokens, cfg.ReadTokensFile, log.Named("auth"))
	if err != nil {
		return nil, fmt.Errorf("READ_TOKENS_FILE: %w", err)
	}
	m := newIngestMetrics(reg)
	pub := newRedisPublisher(rdb, shard.Keys{Prefix: cfg.KeyPrefix}, cfg.Shards, cfg.RedisTimeout, m)
	gate := newBacklogGate(rdb, shard.Keys{Prefix: cfg.KeyPrefix}, cfg.Shards, cfg.MaxLag, cfg.RedisTimeout, m, reg, log.Named("backpressure"))
	router := httpserver.NewRouter(httpserver.Options{
		Service:  config.Ingest,
		Log:      log,
		Registry: reg,
		Ready:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		// Read tokens, not API keys: a device's key does not read metrics.
		MetricsAuth: auth.Middleware(tokens),
	})
	addRoutes(router, cfg, pub, keys, gate, m, log)
	return &service{router: router, pub: pub, gate: gate, jobs: []func(context.Context) error{
		func(ctx context.Context) error { return keys.Watch(ctx, keyReloadInterval) },
		func(ctx context.Context) error { return tokens.Watch(ctx, keyReloadInterval) },
		func(ctx context.Context) error { return gate.Run(ctx, backlogInterval) },
	}}, nil
}
