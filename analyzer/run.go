package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/auth"
	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/logging"
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/redisx"
	"github.com/pulse-iot/pulse/internal/score"
	"github.com/pulse-iot/pulse/internal/shard"
)

// tokenReloadInterval is how often the read-token file is checked for
// changes.
const tokenReloadInterval = time.Second

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(config.Analyzer, getenv)
	if err != nil {
		return err
	}
	log, err := logging.Start(cfg, stdout, zap.String("consumer", cfg.ConsumerName))
	if err != nil {
		return err
	}
	defer log.Sync()
	newDetector, err := detector.Factory(cfg.Detector, cfg.DetectorParams())
	if err != nil {
		return fmt.Errorf("DETECTOR: %w", err)
	}
	tokens, err := auth.NewSet(cfg.ReadTokens, cfg.ReadTokensFile, log.Named("auth"))
	if err != nil {
		return fmt.Errorf("READ_TOKENS_FILE: %w", err)
	}

	params := analysis.Params{Window: cfg.WindowSize, Score: score.DefaultParams(), Alert: cfg.AlertParams(),
		MaxSignals: cfg.MaxSignalsPerDevice}

	reg := httpserver.NewRegistry()
	// Each owned shard keeps one connection blocked in XREADGROUP.
	rdb := redisx.NewFromConfig(cfg, cfg.Shards+8, reg)
	defer rdb.Close()
	m := newAnalyzerMetrics(reg)
	health := newShardHealth(m.healthy)
	keys := shard.Keys{Prefix: cfg.KeyPrefix}
	deps := workerDeps{
		consumer: cfg.ConsumerName, rdb: rdb, keys: keys, params: params, maxFleet: cfg.MaxFleetSignals, count: cfg.ReadCount,
		leaseTTL: cfg.LeaseTTL, timeout: cfg.RedisTimeout, newDetector: newDetector, m: m, health: health, log: log,
	}
	if len(cfg.AlertmanagerURLs) > 0 {
		sender, err := notify.New(rdb, notify.Options{
			URLs: cfg.AlertmanagerURLs, Resend: cfg.AlertResend, LinkBase: cfg.AlertLinkBase,
			CriticalScore: notify.CriticalScoreFor(cfg.AlertThreshold),
		}, reg, log)
		if err != nil {
			return fmt.Errorf("ALERTMANAGER_URL: %w", err)
		}
		deps.alerts, deps.outboxMax = sender, cfg.AlertOutboxMax
	}

	coord := &coordinator{
		name: cfg.ConsumerName, rdb: rdb, keys: keys, shards: cfg.Shards,
		leaseTTL: cfg.LeaseTTL, timeout: cfg.RedisTimeout, m: m, health: health, log: log,
		newWorker: func(s int, lease string) *shardWorker { return newShardWorker(deps, s, lease) },
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
		// The counters tell what the api's /analyze tells: same token.
		MetricsAuth: auth.Middleware(tokens),
	})
	// Profiles only on an admin listener, off unless ADMIN_ADDR is set:
	// HTTP_ADDR is scraped by Prometheus, so it is reachable.
	return httpserver.ServeAll(ctx, log, httpserver.Listeners{
		Addr: cfg.HTTPAddr, Public: httpserver.NewServer(router, log, cfg.BodyTimeout), Drain: 5 * time.Second,
		AdminAddr: cfg.AdminAddr,
	}, coord.Run, func(ctx context.Context) error { return tokens.Watch(ctx, tokenReloadInterval) })
}
