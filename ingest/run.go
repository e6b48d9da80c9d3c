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

// drainTimeout bounds how long shutdown waits for in-flight requests; a
// request waits on Redis at most REDIS_TIMEOUT, so it is added to this.
const drainTimeout = 10 * time.Second

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(config.Ingest, getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	log = log.Named("ingest")
	log.Info("starting", zap.Stringer("config", cfg))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rdb := redisx.New(redisx.Options{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, Timeout: cfg.RedisTimeout, PoolSize: 4 * publishWriters}, reg)
	defer rdb.Close()

	m := newIngestMetrics(reg)
	pub := newRedisPublisher(rdb, shard.Keys{Prefix: cfg.KeyPrefix}, cfg.Shards, cfg.RedisTimeout, m)
	defer pub.Close() // after the server has drained: no request is left waiting

	router := httpserver.NewRouter(httpserver.Options{
		Service:  config.Ingest,
		Log:      log,
		Registry: reg,
		Ready:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	addRoutes(router, cfg, pub, m, log)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	return httpserver.Serve(ctx, log, httpserver.NewServer(router, log), ln, drainTimeout+cfg.RedisTimeout)
}
