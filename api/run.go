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
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat, stdout)
	if err != nil {
		return err
	}
	defer log.Sync()
	log = log.Named("api")
	log.Info("starting", zap.Stringer("config", cfg))
	tokens, err := auth.NewSet(cfg.ReadTokens, cfg.ReadTokensFile, log.Named("auth"))
	if err != nil {
		return fmt.Errorf("READ_TOKENS_FILE: %w", err)
	}

	reg := httpserver.NewRegistry()
	rdb := redisx.NewFromConfig(cfg, 0, reg)
	defer rdb.Close()

	store := results.NewReader(rdb, shard.Keys{Prefix: cfg.KeyPrefix}, cfg.Shards, cfg.WindowSize)
	reg.MustRegister(newFleetCollector(store, cfg.RedisTimeout))

	router := httpserver.NewRouter(httpserver.Options{
		Service:  config.API,
		Log:      log,
		Registry: reg,
		Ready:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	addRoutes(router, cfg, store, tokens, log)

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
	g.Go(func() error { return tokens.Watch(gctx, tokenReloadInterval) })
	g.Go(func() error {
		return httpserver.Serve(gctx, log, httpserver.NewServer(router, log), ln, 10*time.Second)
	})
	if adminLn != nil {
		alog := log.Named("admin")
		g.Go(func() error {
			return httpserver.Serve(gctx, alog, httpserver.NewAdminServer(httpserver.NewAdminRouter(alog), alog), adminLn, 5*time.Second)
		})
	}
	return g.Wait()
}
