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
	"github.com/pulse-iot/pulse/internal/results"
	"github.com/pulse-iot/pulse/internal/shard"
)

// tokenReloadInterval is how often the read-token file is checked for
// changes.
const tokenReloadInterval = time.Second

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(config.API, getenv)
	if err != nil {
		return err
	}
	log, err := logging.Start(cfg, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	reg := httpserver.NewRegistry()
	rdb := redisx.NewFromConfig(cfg, 0, reg)
	defer rdb.Close()
	svc, err := wire(cfg, log, reg, rdb)
	if err != nil {
		return err
	}
	return httpserver.ServeAll(ctx, log, httpserver.Listeners{
		Addr: cfg.HTTPAddr, Public: httpserver.NewServer(svc.router, log, cfg.BodyTimeout), Drain: 10 * time.Second,
		AdminAddr: cfg.AdminAddr,
	}, svc.jobs...)
}

// service is the api as run serves it and the tests drive it.
type service struct {
	router *gin.Engine
	jobs   []func(context.Context) error // background loops beside the server
}

// wire builds the api on rdb: routes, auth and the fleet gauges.
func wire(cfg config.Config, log *zap.Logger, reg *prometheus.Registry, rdb redis.UniversalClient) (*service, error) {
	tokens, err := auth.NewSet(cfg.ReadTokens, cfg.ReadTokensFile, log.Named("auth"))
	if err != nil {
		return nil, fmt.Errorf("READ_TOKENS_FILE: %w", err)
	}
	store := results.NewReader(rdb, shard.Keys{Prefix: cfg.KeyPrefix}, cfg.Shards, cfg.WindowSize)
	reg.MustRegister(newFleetCollector(store, cfg.RedisTimeout))
	router := httpserver.NewRouter(httpserver.Options{
		Service:  config.API,
		Log:      log,
		Registry: reg,
		Ready:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		// The gauges tell what /analyze tells: same token.
		MetricsAuth: auth.Middleware(tokens),
	})
	addRoutes(router, cfg, store, tokens, log)
	return &service{router: router, jobs: []func(context.Context) error{
		func(ctx context.Context) error { return tokens.Watch(ctx, tokenReloadInterval) },
	}}, nil
}
