package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/logging"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/shard"
)

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(config.Analyzer, getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	log = log.Named("analyzer").With(zap.String("consumer", cfg.ConsumerName))
	log.Info("starting", zap.Stringer("config", cfg))
	newDetector, err := detector.Factory(cfg.Detector, cfg.DetectorParams())
	if err != nil {
		return fmt.Errorf("DETECTOR: %w", err)
	}

	reg := httpserver.NewRegistry()
	// Each owned shard keeps one connection blocked in XREADGROUP.
	rdb := redisx.NewFromConfig(cfg, cfg.Shards+8, reg)
	defer rdb.Close()
	m := newAnalyzerMetrics(reg)
	health := newShardHealth(m.healthy)
	keys := shard.Keys{Prefix: cfg.KeyPrefix}

	coord := &coordinator{
		name: cfg.ConsumerName, rdb: rdb, keys: keys, shards: cfg.Shards,
		leaseTTL: cfg.LeaseTTL, timeout: cfg.RedisTimeout, m: m, health: health, log: log,
		newWorker: func(s int, lease string) *shardWorker {
			return newShardWorker(workerDeps{
				consumer: cfg.ConsumerName, rdb: rdb, keys: keys, window: cfg.WindowSize, count: cfg.ReadCount,
				leaseTTL: cfg.LeaseTTL, timeout: cfg.RedisTimeout, newDetector: newDetector, m: m, health: health, log: log,
			}, s, lease)
		},
	}

	router := httpserver.NewRouter(httpserver.Options{
		Service:  config.Analyzer,
		Log:      log,
		Registry: reg,
		// Ready only while Redis answers and every owned shard is processed:
		// a shard stuck on a lost consumer group must not look fine.
		Ready: func(ctx context.Context) error {
			if err := rdb.Ping(ctx).Err(); err != nil {
				return err
			}
			return health.Err()
		},
	})
	httpserver.AddPprof(router) // the analyzer's only listener is an admin one
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return coord.Run(gctx) })
	g.Go(func() error {
		return httpserver.Serve(gctx, log, httpserver.NewServer(router, log), ln, 5*time.Second)
	})
	return g.Wait()
}
