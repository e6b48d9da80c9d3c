// Package redisx builds the Redis client every service uses, instrumented
// with Prometheus metrics: a plain client for one Redis, or a cluster
// client for a Redis Cluster.
package redisx

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/instrument"
)

// Options configure a client.
type Options struct {
	Addr string
	// ClusterAddrs are seed nodes of a Redis Cluster (host:port); when set,
	// New returns a *redis.ClusterClient and Addr is ignored.
	ClusterAddrs []string
	Password     string
	Timeout      time.Duration // dial, read and write timeout of one command
	PoolSize     int           // 0: go-redis's default; on a cluster, per node
}

// New returns a client whose commands are measured on reg as
// pulse_redis_duration_seconds{op} and pulse_redis_errors_total{op}: a
// *redis.Client for o.Addr, or a *redis.ClusterClient when o.ClusterAddrs
// is set.
//
// Retries are off: a command that may have run is never sent twice (an
// XADD sent twice would store an event twice, a batch script run twice
// would count its events twice); callers decide what to retry. On a
// cluster, see newCluster for what is still followed.
func New(o Options, reg prometheus.Registerer) redis.UniversalClient {
	m := newMetrics(reg)
	if len(o.ClusterAddrs) > 0 {
		return newCluster(o, m)
	}
	c := redis.NewClient(&redis.Options{
		Addr:                  o.Addr,
		Password:              o.Password,
		DialTimeout:           o.Timeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.Timeout,
		MaxRetries:            -1,
		DialerRetries:         1, // a refused dial means Redis is down: fail fast (503), do not back off 5 times
		ContextTimeoutEnabled: true,
	})
	c.AddHook(dialHook{m: m})
	c.AddHook(commandHook{m})
	return c
}

// NewFromConfig returns New's client for a service's configuration, with
// poolSize connections per node (0: go-redis's default).
func NewFromConfig(cfg config.Config, poolSize int, reg prometheus.Registerer) redis.UniversalClient {
	return New(Options{Addr: cfg.RedisAddr, ClusterAddrs: cfg.RedisClusterAddrs, Password: cfg.RedisPassword,
		Timeout: cfg.RedisTimeout, PoolSize: poolSize}, reg)
}

const (
	// maxRedirects is how many MOVED or ASK redirections (or re-routes
	// after a READONLY reply) one command may follow: one is the rule, a
	// few cover a topology that moves again meanwhile.
	maxRedirects = 3
	// stateReloadInterval bounds how stale the client's slot map may get
	// when no error tells it that the cluster changed.
	stateReloadInterval = 5 * time.Second
)

// newCluster returns a cluster client that reads and writes on masters
// only (a replica may lag, and results must be exact) and never sends a
// command twice unless Redis refused it.
//
// go-redis spends ClusterOptions.MaxRedirects not only on redirections but
// also on re-sending commands after a network error, a timeout, or a
// CLUSTERDOWN/TRYAGAIN/LOADING reply, and on such an error in a pipeline
// it re-sends the node's whole batch, commands that succeeded included
// (redis/go-redis#1481, #2096). Those commands may have run: re-sent, an
// XADD would store an event twice and the batch script count a batch
// twice. So every command goes down marked NoRetry (noRetryHook), which
// go-redis honours for all of these, while it still follows MOVED and ASK
// and re-routes after READONLY: replies that mean the command did not
// run (it also still retries a pipeline on a node it could not connect
// to: nothing was sent). A failed command is the caller's to retry, as on a single Redis:
// ingest answers 503, the analyzer reads its pending entries again.
//
// go-redis learns a new topology from MOVED replies or every
// ClusterStateReloadInterval; a dead master sends no MOVED, so any error
// that suggests the topology changed (a node unreachable, CLUSTERDOWN, …)
// or a failed dial reloads the slot map at once (at most every 200 ms), and
// the commands that follow reach the promoted replica. A node that refuses
// connections is down: it is dialled once (DialerRetries 1, not 5 with
// backoff), so commands fail fast until the failover instead of each
// waiting out REDIS_TIMEOUT.
//
// Metrics: hooks added to a ClusterClient wrap each command and pipeline
// once, across redirections, but never see dials, which node clients make;
// the dial hook goes on every node client instead.
func newCluster(o Options, m *metrics) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                      o.ClusterAddrs,
		Password:                   o.Password,
		DialTimeout:                o.Timeout,
		ReadTimeout:                o.Timeout,
		WriteTimeout:               o.Timeout,
		PoolSize:                   o.PoolSize,
		PoolTimeout:                o.Timeout,
		MaxRetries:                 -1, // node clients never retry either
		MaxRedirects:               maxRedirects,
		DialerRetries:              1, // a node that refuses is down: fail fast, failover fixes it
		ContextTimeoutEnabled:      true,
		ClusterStateReloadInterval: stateReloadInterval,
	})
	reload := func() { c.ReloadState(context.Background()) }
	c.OnNewNode(func(node *redis.Client) { node.AddHook(dialHook{m: m, failed: reload}) })
	c.AddHook(commandHook{m})
	c.AddHook(noRetryHook{reload: reload})
	return c
}

// noRetryHook marks every command NoRetry on its way down the cluster
// client and reloads the slot map after errors that suggest the topology
// changed.
type noRetryHook struct{ reload func() }

// noRetry is a command that go-redis must not send again after an
// error: only redirections (MOVED, ASK) and READONLY re-routes are
// followed. Its results land in the command it wraps.
type noRetry struct{ redis.Cmder }

func (noRetry) NoRetry() bool { return true }

func (noRetryHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h noRetryHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, noRetry{cmd})
		if topologyMayHaveChanged(err) {
			h.reload()
		}
		return err
	}
}

func (h noRetryHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		wrapped := make([]redis.Cmder, len(cmds))
		for i, cmd := range cmds {
			wrapped[i] = noRetry{cmd}
		}
		err := next(ctx, wrapped)
		for _, cmd := range cmds {
			if topologyMayHaveChanged(cmd.Err()) {
				h.reload()
				break
			}
		}
		return err
	}
}

// topologyMayHaveChanged reports whether err may mean that a node failed
// or slots moved, so the slot map is worth reloading.
func topologyMayHaveChanged(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true // unreachable, closed or too slow
	}
	return replyStartsWith(rerr, notServing) || replyStartsWith(rerr, redirected)
}

var (
	// notServing start the replies of a cluster node that cannot serve the
	// command for now, and did not run it.
	notServing = []string{"CLUSTERDOWN ", "TRYAGAIN ", "MASTERDOWN ", "LOADING ", "READONLY "}
	// redirected start the replies that send the command to another node.
	redirected = []string{"MOVED ", "ASK "}
)

func replyStartsWith(rerr redis.Error, prefixes []string) bool {
	s := rerr.Error()
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

type metrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: instrument.HistogramVec(reg, "pulse_redis_duration_seconds", "Time of Redis commands and pipelines, by command.",
			[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}, "op"),
		errors: instrument.CounterVec(reg, "pulse_redis_errors_total", "Redis commands and pipelines that failed, by command.", "op"),
	}
	return m
}

func (m *metrics) observe(op string, start time.Time, err error) {
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		m.errors.WithLabelValues(op).Inc()
	}
}

// dialHook counts failed dials as pulse_redis_errors_total{op="dial"}
// and calls failed, if set.
type dialHook struct {
	m      *metrics
	failed func()
}

func (h dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			h.m.errors.WithLabelValues("dial").Inc()
			if h.failed != nil {
				h.failed()
			}
		}
		return conn, err
	}
}

func (dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// commandHook measures commands and pipelines.
type commandHook struct{ m *metrics }

func (commandHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h commandHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.m.observe(opName(cmd), start, err)
		return err
	}
}

func (h commandHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.m.observe("pipeline", start, err)
		return err
	}
}

// opName keeps label values few: the command's name, lower case.
func opName(cmd redis.Cmder) string {
	return strings.ToLower(cmd.Name())
}
