package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/redistest"
)

// system is the pipeline under test, started by us or given by URLs.
type system struct {
	own       bool
	ingest    string   // base URL
	api       string   // base URL
	analyzers []string // admin base URLs
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
	admin string // base URL of /debug/pprof: ADMIN_ADDR (ingest, api) or HTTP_ADDR (analyzers)
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
	for i, a := range o.analyzers {
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

type service struct {
	name  string
	addr  string
	admin string // ADMIN_ADDR, for the services that have one
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
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
		e := env
		if st.extra != "" {
			e = append(append([]string(nil), env...), st.extra)
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

// buildServices builds the three binaries from the workspace root (or
// from src, another checkout with its own go.work), as `make build` does
// but keeping the symbol table, so that perf can name the functions of a
// profile.
func buildServices(ctx context.Context, dir, src string) error {
	root := src
	env := append(os.Environ(), "CGO_ENABLED=0")
	if root == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOWORK").Output()
		if err != nil {
			return fmt.Errorf("go env GOWORK: %w", err)
		}
		work := strings.TrimSpace(string(out))
		if work == "" || work == "off" {
			return errors.New("not inside the Pulse go.work workspace: run from the repository")
		}
		root = filepath.Dir(work)
	} else {
		if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
			return fmt.Errorf("-src %s: no go.work there", root)
		}
		env = append(env, "GOWORK="+filepath.Join(root, "go.work"))
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+"/", "./ingest", "./analyzer", "./api")
	cmd.Dir = root
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build services in %s: %w\n%s", cmd.Dir, err, stderr.String())
	}
	return nil
}

func (c *cluster) launch(ctx context.Context, name, bin string, env []string) (*service, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &service{name: name, addr: "127.0.0.1:" + strconv.Itoa(port), log: filepath.Join(c.dir, name+".log"), done: make(chan struct{})}
	if bin != "analyzer" {
		// pprof is served on ADMIN_ADDR by ingest and the api (a service
		// that does not know the variable ignores it), on HTTP_ADDR by the
		// analyzer.
		admin, err := freePort()
		if err != nil {
			return nil, err
		}
		s.admin = "127.0.0.1:" + strconv.Itoa(admin)
		env = append(env, "ADMIN_ADDR="+s.admin)
	}
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	s.cmd = exec.Command(filepath.Join(c.dir, bin))
	s.cmd.Env = append(append(os.Environ(), "HTTP_ADDR="+s.addr), env...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + s.addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited at start:\n%s", name, tailFile(s.log, 2000))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not answer /health within 30s:\n%s", name, tailFile(s.log, 2000))
		}
	}
}

func (s *service) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (c *cluster) stop(logf func(string, ...any)) {
	for i := len(c.services) - 1; i >= 0; i-- {
		c.services[i].stop()
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
		s.logs[svc.name] = svc.log
	}
	s.procs = append(s.procs, proc{name: "redis", pid: c.redisPID})
	for _, svc := range c.services {
		u := "http://" + svc.addr
		admin := u
		if svc.admin != "" {
			admin = "http://" + svc.admin
		}
		s.procs = append(s.procs, proc{name: svc.name, pid: svc.cmd.Process.Pid, url: u, admin: admin})
		switch {
		case svc.name == "ingest":
			s.ingest = u
		case svc.name == "api":
			s.api = u
		case strings.HasPrefix(svc.name, "analyzer"):
			s.analyzers = append(s.analyzers, u)
		}
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
