package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/logging"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/shard"
)

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(config.API, getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	log = log.Named("api")
	log.Info("starting", zap.Stringer("config", cfg))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rdb := redisx.New(redisx.Options{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, Timeout: cfg.RedisTimeout}, reg)
	defer rdb.Close()

	store := &redisStore{rdb: rdb, keys: shard.Keys{Prefix: cfg.KeyPrefix}, shards: cfg.Shards, window: cfg.WindowSize}
	reg.MustRegister(newFleetCollector(store, cfg.RedisTimeout))

	router := httpserver.NewRouter(httpserver.Options{
		Service:  config.API,
		Log:      log,
		Registry: reg,
		Ready:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	addRoutes(router, store, cfg.WindowSize, log)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	return httpserver.Serve(ctx, log, httpserver.NewServer(router, log), ln, 10*time.Second)
}
