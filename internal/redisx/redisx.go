// Package redisx builds the Redis client every service uses, instrumented
// with Prometheus metrics.
package redisx

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Options configure a client.
type Options struct {
	Addr     string
	Password string
	Timeout  time.Duration // dial, read and write timeout of one command
	PoolSize int           // 0: go-redis's default
}

// New returns a client whose commands are measured on reg as
// pulse_redis_duration_seconds{op} and pulse_redis_errors_total{op}.
// Retries are off: a command that may have run is never sent twice (an
// XADD sent twice would store an event twice); callers decide what to retry.
func New(o Options, reg prometheus.Registerer) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{
		Addr:                  o.Addr,
		Password:              o.Password,
		DialTimeout:           o.Timeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.Timeout,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
	c.AddHook(newHook(reg))
	return c
}

type hook struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newHook(reg prometheus.Registerer) *hook {
	h := &hook{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pulse_redis_duration_seconds",
			Help:    "Time of Redis commands and pipelines, by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_redis_errors_total",
			Help: "Redis commands and pipelines that failed, by command.",
		}, []string{"op"}),
	}
	reg.MustRegister(h.duration, h.errors)
	return h
}

func (h *hook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			h.errors.WithLabelValues("dial").Inc()
		}
		return conn, err
	}
}

func (h *hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(opName(cmd), start, err)
		return err
	}
}

func (h *hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe("pipeline", start, err)
		return err
	}
}

func (h *hook) observe(op string, start time.Time, err error) {
	h.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		h.errors.WithLabelValues(op).Inc()
	}
}

// opName keeps label values few: the command's name, lower case.
func opName(cmd redis.Cmder) string {
	return strings.ToLower(cmd.Name())
}

// IsUnavailable reports whether err means Redis could not be reached or
// answered too late, as opposed to Redis refusing the command.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout) || strings.Contains(err.Error(), "connection refused")
}
