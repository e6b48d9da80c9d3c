package chaos

import (
	"context"
	"net"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/proctest"
)

// newService returns a Pulse service (ingest, analyzer or api) to run
// from binDir on a free loopback address with env, logging to
// logDir/name.log.
func newService(binDir, logDir, kind, name string, env []string) (*proctest.Proc, error) {
	p, err := proctest.Service(binDir, kind, name, env...)
	if err != nil {
		return nil, err
	}
	p.Log = filepath.Join(logDir, name+".log")
	return p, nil
}

// newRedis returns a redis-server with AOF on addr, its data in dir.
func newRedis(logDir, dir, addr, fsync string) *proctest.Proc {
	_, port, _ := net.SplitHostPort(addr)
	return &proctest.Proc{
		Name: "redis",
		Argv: []string{"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", fsync, "--save", "",
			"--daemonize", "no", "--loglevel", "notice"},
		Addr:  addr,
		Log:   filepath.Join(logDir, "redis.log"),
		Group: true,
		// LOADING (AOF replay) fails PING, so ready means serving.
		Ready: func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
			defer c.Close()
			return c.Ping(ctx).Err()
		},
	}
}
