package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/redistest"
)

// system is the pipeline under test, started by us or given by URLs.
type system struct {
	own       bool
	ingest    string   // base URL
	api       string   // base URL
	analyzers []string // base URLs (HTTP_ADDR)
	// procs are the processes whose CPU and memory we read: only those we
	// started (redis, ingest, analyzer-1, analyzer-2, api).
	procs     []proc
	admins    []proc        // given URLs only: where to fetch pprof
	rdb       *redis.Client // nil when Redis is unknown
	redisHost string
	redisPort int
	prefix    string
	shards    int
	http      *http.Client      // scrapes and polls
	logs      map[string]string // own pipeline: each service's log file
	keepLogs  *bool             // own pipeline: set to keep the logs folder
}

// troubled prints the tail of each service's log and keeps the logs, after
// something went wrong that the logs may explain.
func (s *system) troubled(logf func(string, ...any)) {
	if s.keepLogs == nil || *s.keepLogs {
		return
	}
	*s.keepLogs = true
	for _, name := range sortedKeys(s.logs) {
		logf("  %s log, last lines (%s):\n%s", name, s.logs[name], tailFile(s.logs[name], 1500))
	}
}

type proc struct {
	name  string
	pid   int
	url   string // base URL; "" for redis
	admin string // base URL of /debug/pprof: the service's ADMIN_ADDR
}

func (s *system) close() {
	if s.rdb != nil {
		s.rdb.Close()
	}
}

func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
}

func givenSystem(o *options) (*system, error) {
	s := &system{ingest: o.ingest, api: o.api, analyzers: o.analyzers, prefix: o.prefix, shards: o.shards, http: newHTTPClient()}
	// No pids: CPU and memory are unknown, pprof comes from the admin URLs.
	if o.ingestAdmin != "" {
		s.admins = append(s.admins, proc{name: "ingest", admin: o.ingestAdmin})
	}
	if o.apiAdmin != "" {
		s.admins = append(s.admins, proc{name: "api", admin: o.apiAdmin})
	}
	for i, a := range o.analyzerAdmins {
		s.admins = append(s.admins, proc{name: fmt.Sprintf("analyzer-%d", i+1), admin: a})
	}
	if o.redisAddr != "" {
		host, port, err := net.SplitHostPort(o.redisAddr)
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		s.redisHost = host
		s.redisPort, _ = strconv.Atoi(port)
		s.rdb = redis.NewClient(&redis.Options{Addr: o.redisAddr, Password: os.Getenv("REDIS_PASSWORD")})
	}
	return s, nil
}

// cluster is a pipeline we started: redis-server and the three binaries,
// built from this workspace.
type cluster struct {
	dir      string
	keep     bool
	redis    *redistest.Server
	redisPID int
	prefix   string
	shards   int
	services []*service
}

// service is one of the binaries we started.
type service struct {
	*proctest.Proc
	admin string // ADMIN_ADDR, for the services that have one
}

func startCluster(ctx context.Context, o *options, logf func(string, ...any)) (c *cluster, err error) {
	dir, err := os.MkdirTemp("", "pulse-bench-")
	if err != nil {
		return nil, err
	}
	c = &cluster{dir: dir, keep: o.keep, prefix: fmt.Sprintf("bench%d", time.Now().UnixNano()), shards: o.shards}
	defer func() {
		if err != nil {
			c.stop(logf)
		}
	}()
	if err := buildServices(ctx, dir, o.src); err != nil {
		return nil, err
	}
	// redistest runs redis-server without persistence (--save "",
	// --appendonly no) on a free loopback port, files in its own folder.
	c.redis, err = redistest.Start()
	if err != nil {
		return nil, err
	}
	rdb := c.redis.Client()
	defer rdb.Close()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO: %w", err)
	}
	c.redisPID, _ = strconv.Atoi(infoField(info, "process_id"))

	env := []string{
		"REDIS_ADDR=" + c.redis.Addr, "KEY_PREFIX=" + c.prefix, "SHARDS=" + strconv.Itoa(o.shards),
		"LOG_LEVEL=warn", "LOG_FORMAT=json",
	}
	env = append(env, o.env...)
	starts := []struct{ name, bin, extra string }{
		{"ingest", "ingest", ""},
		{"analyzer-1", "analyzer", "CONSUMER_NAME=bench-analyzer-1"},
		{"analyzer-2", "analyzer", "CONSUMER_NAME=bench-analyzer-2"},
		{"api", "api", ""},
	}
	for _, st := range starts {
		e := append([]string(nil), env...)
		if st.extra != "" {
			e = append(e, st.extra)
		}
		svc, err := c.launch(ctx, st.name, st.bin, e)
		if err != nil {
			return nil, err
		}
		c.services = append(c.services, svc)
	}
	logf("pipeline up: redis %s (pid %d), KEY_PREFIX=%s SHARDS=%d; logs in %s", c.redis.Addr, c.redisPID, c.prefix, o.shards, dir)
	return c, nil
}

// buildServices builds the three binaries from the repository (or from
// src, another checkout with its own go.work), as `make build` does but
// keeping the symbol table, so that perf can name the functions of a
// profile.
func buildServices(ctx context.Context, dir, src string) error {
	o := proctest.BuildOptions{Root: src, Dir: dir, Flags: []string{"-trimpath"}, Env: []string{"CGO_ENABLED=0"}}
	if src == "" {
		root, err := proctest.RepoRoot()
		if err != nil {
			return err
		}
		o.Root = root
	} else {
		if _, err := os.Stat(filepath.Join(src, "go.work")); err != nil {
			return fmt.Errorf("-src %s: no go.work there", src)
		}
		o.Env = append(o.Env, "GOWORK="+filepath.Join(src, "go.work"))
	}
	_, err := proctest.Build(ctx, o)
	return err
}

// launch starts binary bin as name, logging to the cluster's folder, and
// waits for its /health.
func (c *cluster) launch(ctx context.Context, name, bin string, env []string) (*service, error) {
	s := &service{}
	// pprof is served on ADMIN_ADDR only, by every service.
	admin, err := proctest.FreeAddr()
	if err != nil {
		return nil, err
	}
	s.admin = admin
	env = append(env, "ADMIN_ADDR="+admin)
	p, err := proctest.Service(c.dir, bin, name, env...)
	if err != nil {
		return nil, err
	}
	p.Log = filepath.Join(c.dir, name+".log")
	p.ReadyWithin = 30 * time.Second
	s.Proc = p
	if err := p.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w:\n%s", err, p.Tail(2000))
	}
	return s, nil
}

func (c *cluster) stop(logf func(string, ...any)) {
	for i := len(c.services) - 1; i >= 0; i-- {
		if err := c.services[i].Stop(syscall.SIGTERM, 15*time.Second); err != nil {
			logf("%v", err)
		}
	}
	c.services = nil
	if c.redis != nil {
		c.redis.Stop()
		c.redis = nil
	}
	if c.keep {
		logf("kept logs and binaries in %s", c.dir)
		return
	}
	os.RemoveAll(c.dir)
}

func (c *cluster) system() *system {
	s := &system{own: true, prefix: c.prefix, shards: c.shards, http: newHTTPClient(), redisHost: "127.0.0.1", redisPort: c.redis.Port}
	s.rdb = c.redis.Client()
	s.keepLogs = &c.keep
	s.logs = map[string]string{}
	for _, svc := range c.services {
		s.logs[svc.Name] = svc.Log
	}
	s.procs = append(s.procs, proc{name: "redis", pid: c.redisPID})
	for _, svc := range c.services {
		u := svc.URL("")
		admin := u
		if svc.admin != "" {
			admin = "http://" + svc.admin
		}
		s.procs = append(s.procs, proc{name: svc.Name, pid: svc.Pid(), url: u, admin: admin})
		switch {
		case svc.Name == "ingest":
			s.ingest = u
		case svc.Name == "api":
			s.api = u
		case strings.HasPrefix(svc.Name, "analyzer"):
			s.analyzers = append(s.analyzers, u)
		}
	}
	return s
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// infoField returns field's value in a Redis INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}
