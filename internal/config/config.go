// Package config reads a service's settings from environment variables.
// Every variable, its default and the services that read it are declared
// once, in vars, so the loader, the docs and the deployment checks agree.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/notify"
)

// DefaultMaxFleetSignals is MAX_FLEET_SIGNALS's default.
const DefaultMaxFleetSignals = 256

// The services that read a configuration.
const (
	Ingest   = "ingest"
	Analyzer = "analyzer"
	API      = "api"
)

// Config is every setting of every service. The shared settings are read
// and checked by every service, even those that do not use them, so that
// one ConfigMap serves all and a typo stops every service, not just one.
type Config struct {
	Service string

	RedisAddr     string
	RedisPassword string
	RedisTimeout  time.Duration
	KeyPrefix     string
	Shards        int

	HTTPAddr  string
	LogLevel  string
	LogFormat string

	WindowSize int
	MinSamples int
	ZThreshold float64
	Detector   string

	MaxBatch     int
	MaxBodyBytes int64
	MaxMetrics   int // ingest: named metrics per object

	ConsumerName   string
	LeaseTTL       time.Duration
	ReadCount      int
	AlertThreshold float64 // analyzer: a signal's alert opens at this score
	AlertRecovery  int     // analyzer: consecutive normal values that close it

	// Cardinality of named signals and tags (analyzer).
	MaxSignalsPerDevice int // signals a device tracks, rps and cpu included
	MaxFleetSignals     int // distinct signal names, tag keys and values per key the fleet tracks

	// Delivery of device alerts to Alertmanager (analyzer; internal/notify).
	AlertmanagerURLs []string      // base URLs; none: delivery off. May carry passwords.
	AlertResend      time.Duration // open alerts are posted again this often
	AlertLinkBase    string        // the api's base URL for links in alerts; "" for none
	AlertOutboxMax   int           // most alert changes a shard's outbox keeps

	RedisClusterAddrs []string

	APIKeys        []string // ingest: accepted API keys (besides those in APIKeysFile)
	APIKeysFile    string
	ReadTokens     []string // accepted read tokens (besides those in ReadTokensFile): api queries, /prometheus
	ReadTokensFile string
	MaxInflight    int     // requests served at once; beyond it 503 (0: no cap)
	RateLimit      float64 // requests per second per client (0: off)
	RateBurst      int
	MaxLag         int64         // ingest: refuse writes beyond this many unprocessed entries (0: off)
	AdminAddr      string        // pprof listener ("" : off)
	BodyTimeout    time.Duration // longest a request body may take to arrive
}

// DetectorParams returns the detector settings.
func (c Config) DetectorParams() detector.Params {
	return detector.Params{WindowSize: c.WindowSize, MinSamples: c.MinSamples, Threshold: c.ZThreshold}
}

// AlertParams returns the alert settings.
func (c Config) AlertParams() alert.Params {
	return alert.Params{Threshold: c.AlertThreshold, Recovery: c.AlertRecovery}
}

// String describes the configuration for the start-up log, secrets masked.
func (c Config) String() string {
	masked := c
	if masked.RedisPassword != "" {
		masked.RedisPassword = "***"
	}
	masked.APIKeys = maskAll(masked.APIKeys)
	masked.ReadTokens = maskAll(masked.ReadTokens)
	masked.AlertmanagerURLs = make([]string, len(c.AlertmanagerURLs))
	for i, u := range c.AlertmanagerURLs {
		masked.AlertmanagerURLs[i] = notify.Redact(u)
	}
	type plain Config // without this String method, so %+v does not recurse
	return fmt.Sprintf("%+v", plain(masked))
}

// Var describes one environment variable.
type Var struct {
	Name     string
	Default  string
	Services []string
	Doc      string
	set      func(c *Config, v string) error
}

var (
	all             = []string{Ingest, Analyzer, API}
	deviceShapedKey = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Vars lists every variable; the order is the documentation's.
func Vars() []Var {
	return []Var{
		{"REDIS_ADDR", "127.0.0.1:6379", all, "Redis address (host:port).", func(c *Config, v string) error {
			if err := checkHostPort(v); err != nil {
				return err
			}
			c.RedisAddr = v
			return nil
		}},
		{"REDIS_PASSWORD", "", all, "Redis password (AUTH); never logged.", func(c *Config, v string) error {
			c.RedisPassword = v
			return nil
		}},
		{"REDIS_TIMEOUT", "2s", all, "Longest a request waits on Redis before failing (ingest answers 503).", func(c *Config, v string) error {
			return positiveDuration(&c.RedisTimeout, v)
		}},
		{"KEY_PREFIX", "pulse", all, "Prefix of every Redis key, so several pipelines can share one Redis.", func(c *Config, v string) error {
			if !deviceShapedKey.MatchString(v) {
				return errors.New("must be 1-64 characters of [A-Za-z0-9_.-]")
			}
			c.KeyPrefix = v
			return nil
		}},
		{"SHARDS", "16", all, "Number of streams events are spread over; the most analyzers that can work at once. Must be the same for every service.", func(c *Config, v string) error {
			return intIn(&c.Shards, v, 1, 1024)
		}},
		{"HTTP_ADDR", "", all, "Listen address; default :8080 (ingest), :8081 (api), :8082 (analyzer: probes and metrics).", func(c *Config, v string) error {
			if v == "" {
				v = map[string]string{Ingest: ":8080", API: ":8081", Analyzer: ":8082"}[c.Service]
			}
			if err := checkHostPort(v); err != nil {
				return err
			}
			c.HTTPAddr = v
			return nil
		}},
		{"LOG_LEVEL", "info", all, "debug, info, warn or error.", func(c *Config, v string) error {
			return oneOf(&c.LogLevel, v, "debug", "info", "warn", "error")
		}},
		{"LOG_FORMAT", "json", all, "json or console.", func(c *Config, v string) error {
			return oneOf(&c.LogFormat, v, "json", "console")
		}},
		{"WINDOW_SIZE", "50", all, "Values kept per device and signal (rolling window).", func(c *Config, v string) error {
			return intIn(&c.WindowSize, v, 2, 10000)
		}},
		{"MIN_SAMPLES", "10", all, "Values a window must hold before anomalies are judged.", func(c *Config, v string) error {
			return intIn(&c.MinSamples, v, 1, 10000)
		}},
		{"Z_THRESHOLD", "2.0", all, "A value is an anomaly when its z-score's absolute value exceeds this.", func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0) || f > 1e6 {
				return errors.New("must be a number above 0")
			}
			c.ZThreshold = f
			return nil
		}},
		{"DETECTOR", "robust", all, "Anomaly detector: " + strings.Join(detector.Names, " or ") + ".", func(c *Config, v string) error {
			return oneOf(&c.Detector, v, detector.Names...)
		}},
		{"MAX_BATCH", "1000", all, "Most metrics one POST /metrics may carry.", func(c *Config, v string) error {
			return intIn(&c.MaxBatch, v, 1, 1000000)
		}},
		{"MAX_BODY_BYTES", "1048576", all, "Largest request body, in bytes, after gzip decompression.", func(c *Config, v string) error {
			var n int
			if err := intIn(&n, v, 64, 1<<30); err != nil {
				return err
			}
			c.MaxBodyBytes = int64(n)
			return nil
		}},
		{"MAX_METRICS", strconv.Itoa(metric.DefaultMaxMetrics), []string{Ingest}, "Most named metrics (\"metrics\") one object of POST /metrics may carry, 1 to " + strconv.Itoa(metric.MaxMetricsLimit) + "; more is a 400.", func(c *Config, v string) error {
			return intIn(&c.MaxMetrics, v, 1, metric.MaxMetricsLimit)
		}},
		{"CONSUMER_NAME", "", []string{Analyzer}, "This analyzer's consumer name; default hostname-pid. Must be unique among live analyzers.", func(c *Config, v string) error {
			if v == "" {
				host, _ := os.Hostname()
				v = fmt.Sprintf("%s-%d", host, os.Getpid())
			}
			c.ConsumerName = v
			return nil
		}},
		{"LEASE_TTL", "5s", []string{Analyzer}, "How long a shard lease lives without renewal; a dead analyzer's shards move after at most this.", func(c *Config, v string) error {
			if err := positiveDuration(&c.LeaseTTL, v); err != nil {
				return err
			}
			if c.LeaseTTL < time.Second {
				return errors.New("must be at least 1s")
			}
			return nil
		}},
		{"READ_COUNT", "500", []string{Analyzer}, "Most stream entries an analyzer reads and applies in one batch.", func(c *Config, v string) error {
			return intIn(&c.ReadCount, v, 1, 100000)
		}},
		{"MAX_SIGNALS_PER_DEVICE", strconv.Itoa(analysis.DefaultMaxSignals), []string{Analyzer}, "Most signals a device tracks, rps and cpu included (2 to 1024); values of further named metrics are counted (dropped_signals, pulse_signals_dropped_total), not analysed.", func(c *Config, v string) error {
			return intIn(&c.MaxSignalsPerDevice, v, 2, 1024)
		}},
		{"MAX_FLEET_SIGNALS", strconv.Itoa(DefaultMaxFleetSignals), []string{Analyzer}, "Most distinct named signals the fleet tracks, and likewise tag keys and values per tag key (1 to 100000); further names and values are counted (pulse_signals_dropped_total, pulse_tags_dropped_total), not tracked.", func(c *Config, v string) error {
			return intIn(&c.MaxFleetSignals, v, 1, 100000)
		}},
		{"ALERT_THRESHOLD", strconv.FormatFloat(alert.DefaultThreshold, 'g', -1, 64), []string{Analyzer}, "A device's signal opens an alert when a value's anomaly score (0 to 1) reaches this; the default maximises NAB's standard profile (docs/ACCURACY.md).", func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0 && f <= 1) {
				return errors.New("must be a score above 0, at most 1")
			}
			c.AlertThreshold = f
			return nil
		}},
		{"ALERT_RECOVERY", strconv.Itoa(alert.DefaultRecovery), []string{Analyzer}, "An open alert closes after this many consecutive values back to normal (score below half ALERT_THRESHOLD).", func(c *Config, v string) error {
			return intIn(&c.AlertRecovery, v, 1, math.MaxUint16)
		}},
		{"ALERTMANAGER_URL", "", []string{Analyzer}, "Comma-separated base URLs of the Alertmanagers that receive device alerts (every one gets every alert: list each replica); empty: delivery off. user:password@ is allowed and never logged. See docs/ALERTING.md.", func(c *Config, v string) error {
			urls, err := notify.ParseURLs(v)
			c.AlertmanagerURLs = urls
			return err
		}},
		{"ALERT_RESEND", "1m", []string{Analyzer}, "How often open device alerts are posted to Alertmanager again, with endsAt four intervals ahead (1s to 1h).", func(c *Config, v string) (err error) {
			c.AlertResend, err = notify.ParseResend(v)
			return err
		}},
		{"ALERT_LINK_BASE", "", []string{Analyzer}, "The api's base URL as people reach it; alerts sent to Alertmanager then link to <ALERT_LINK_BASE>/alerts?device_id=…. Empty: no links.", func(c *Config, v string) (err error) {
			c.AlertLinkBase, err = notify.ParseLinkBase(v)
			return err
		}},
		{"ALERT_OUTBOX_MAX", strconv.Itoa(notify.DefaultOutboxMax), []string{Analyzer}, "Most device alert changes each shard's outbox keeps while an Alertmanager is unreachable (1 to 1000000); beyond it the oldest are dropped and counted.", func(c *Config, v string) (err error) {
			c.AlertOutboxMax, err = notify.ParseOutboxMax(v)
			return err
		}},
		{"REDIS_CLUSTER_ADDRS", "", all, "Comma-separated host:port seeds of a Redis Cluster; when set, every service uses a cluster client and REDIS_ADDR is ignored.", func(c *Config, v string) error {
			for _, a := range splitList(v) {
				if err := checkHostPort(a); err != nil {
					return fmt.Errorf("%q: %w", a, err)
				}
				c.RedisClusterAddrs = append(c.RedisClusterAddrs, a)
			}
			return nil
		}},
		{"API_KEYS", "", []string{Ingest}, "Comma-separated API keys; when any key is configured (here or in API_KEYS_FILE), POST /metrics needs Authorization: Bearer <key> or X-API-Key. Never logged.", func(c *Config, v string) error {
			c.APIKeys = splitList(v)
			return nil
		}},
		{"API_KEYS_FILE", "", []string{Ingest}, "File of API keys, one per line (# comments), e.g. mounted from a Secret; re-read when it changes, so keys rotate without a restart.", func(c *Config, v string) error {
			c.APIKeysFile = v
			return nil
		}},
		{"READ_TOKENS", "", all, "Comma-separated read tokens; when any is configured (here or in READ_TOKENS_FILE), the api's query endpoints and every service's /prometheus need Authorization: Bearer <token> or X-API-Key. Never logged.", func(c *Config, v string) error {
			c.ReadTokens = splitList(v)
			return nil
		}},
		{"READ_TOKENS_FILE", "", all, "File of read tokens, one per line, re-read when it changes.", func(c *Config, v string) error {
			c.ReadTokensFile = v
			return nil
		}},
		{"MAX_INFLIGHT", "4096", []string{Ingest, API}, "Requests served at once; beyond it the service answers 503 with Retry-After instead of queueing (0: no cap).", func(c *Config, v string) error {
			return intIn(&c.MaxInflight, v, 0, 1<<20)
		}},
		{"RATE_LIMIT", "0", []string{Ingest, API}, "Requests per second allowed per client address (token bucket); beyond it 429 with Retry-After (0: off).", func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1e9 || f != f {
				return errors.New("must be a number of requests per second, 0 or more")
			}
			c.RateLimit = f
			return nil
		}},
		{"RATE_BURST", "0", []string{Ingest, API}, "Requests a client may send at once (its bucket's size); 0 means twice RATE_LIMIT, at least 1.", func(c *Config, v string) error {
			return intIn(&c.RateBurst, v, 0, 1<<30)
		}},
		{"MAX_LAG", "1000000", []string{Ingest}, "When the analyzers are this many events behind, ingest answers 503 with Retry-After instead of accepting data it cannot analyze (0: off).", func(c *Config, v string) error {
			var n int
			if err := intIn(&n, v, 0, 1<<40); err != nil {
				return err
			}
			c.MaxLag = int64(n)
			return nil
		}},
		{"ADMIN_ADDR", "", all, "Listen address of the admin endpoints (/debug/pprof and /health), unauthenticated: bind it to loopback or a port nothing exposes; empty: off (the default). Must differ from HTTP_ADDR: profiles are never served there.", func(c *Config, v string) error {
			if v != "" {
				if err := checkHostPort(v); err != nil {
					return err
				}
			}
			c.AdminAddr = v
			return nil
		}},
		{"BODY_TIMEOUT", "30s", all, "Longest a request body may take to arrive, from the end of its headers; a slower one is answered 408 and its connection closed, so a slow client holds a MAX_INFLIGHT slot at most this long. From 1s to 10m.", func(c *Config, v string) error {
			if err := positiveDuration(&c.BodyTimeout, v); err != nil {
				return err
			}
			if c.BodyTimeout < time.Second || c.BodyTimeout > 10*time.Minute {
				return errors.New("must be from 1s to 10m")
			}
			return nil
		}},
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func maskAll(secrets []string) []string {
	if len(secrets) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d keys", len(secrets))}
}

// VarsFor returns the names of the variables service reads.
func VarsFor(service string) []string {
	var names []string
	for _, v := range Vars() {
		for _, s := range v.Services {
			if s == service {
				names = append(names, v.Name)
			}
		}
	}
	return names
}

// MapEnv returns a getenv for Load that reads vars and nothing else, so
// that the process's environment cannot leak into a configuration built
// by a test or a tool.
func MapEnv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Load reads service's variables through getenv. Every invalid value is
// reported, each with its variable's name.
func Load(service string, getenv func(string) string) (Config, error) {
	c := Config{Service: service}
	var errs []error
	for _, v := range Vars() {
		if !contains(v.Services, service) {
			continue
		}
		val := strings.TrimSpace(getenv(v.Name))
		if val == "" {
			val = v.Default
		}
		if err := v.set(&c, val); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", v.Name, val, err))
		}
	}
	if c.RateBurst == 0 {
		c.RateBurst = max(1, int(2*c.RateLimit))
	}
	if c.AdminAddr != "" && c.AdminAddr == c.HTTPAddr && !strings.HasSuffix(c.AdminAddr, ":0") { // :0 picks a free port each
		errs = append(errs, fmt.Errorf("ADMIN_ADDR=%q: must differ from HTTP_ADDR", c.AdminAddr))
	}
	if c.MinSamples > c.WindowSize {
		errs = append(errs, fmt.Errorf("MIN_SAMPLES=%q: must not exceed WINDOW_SIZE=%d", strconv.Itoa(c.MinSamples), c.WindowSize))
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func intIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
	}
	*dst = n
	return nil
}

func positiveDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("must be a positive duration such as 500ms or 2s")
	}
	*dst = d
	return nil
}

func oneOf(dst *string, v string, allowed ...string) error {
	if !contains(allowed, v) {
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
	*dst = v
	return nil
}

// checkHostPort accepts what net.Dial accepts: host:port with an IPv6
// host in brackets ([::1]:6379, not ::1:6379), the host possibly empty
// (a listen address such as :8080), the port a number from 0 to 65535.
func checkHostPort(v string) error {
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("must be host:port (an IPv6 host in brackets)")
	}
	if port, err := strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
		return errors.New("must be host:port with a port from 0 to 65535")
	}
	return nil
}
