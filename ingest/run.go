package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

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
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	log = log.Named("ingest")
	log.Info("starting", zap.Stringer("config", cfg))
	keys, err := auth.NewSet(cfg.APIKeys, cfg.APIKeysFile, log.Named("auth"))
	if err != nil {
		return fmt.Errorf("API_KEYS_FILE: %w", err)
	}
	tokens, err := auth.NewSet(cfg.ReadTokens, cfg.ReadTokensFile, log.Named("auth"))
	if err != nil {
		return fmt.Errorf("READ_TOKENS_FILE: %w", err)
	}

	reg := httpserver.NewRegistry()
	rdb := redisx.NewFromConfig(cfg, 4*publishWriters, reg)
	defer rdb.Close()

	m := newIngestMetrics(reg)
	pub := newRedisPublisher(rdb, shard.Keys{Prefix: cfg.KeyPrefix}, cfg.Shards, cfg.RedisTimeout, m)
	defer pub.Close() // after the server has drained: no request is left waiting
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

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	var adminLn net.Listener
	if cfg.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen %s (ADMIN_ADDR): %w", cfg.AdminAddr, err)
		}
	}

	// One group: if any part fails, all stop, and each stops with ctx.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return keys.Watch(gctx, keyReloadInterval) })
	g.Go(func() error { return tokens.Watch(gctx, keyReloadInterval) })
	g.Go(func() error { return gate.Run(gctx, backlogInterval) })
	g.Go(func() error {
		return httpserver.Serve(gctx, log, httpserver.NewServer(router, log, cfg.BodyTimeout), ln, drainTimeout+cfg.RedisTimeout)
	})
	if adminLn != nil {
		alog := log.Named("admin")
		g.Go(func() error {
			return httpserver.Serve(gctx, alog, httpserver.NewAdminServer(httpserver.NewAdminRouter(alog), alog), adminLn, 5*time.Second)
		})
	}
	return g.Wait()
}
