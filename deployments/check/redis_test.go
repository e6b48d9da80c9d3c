//go:build unix

package check

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/proctest"
)

// The redis.conf the StatefulSet mounts is accepted by a real redis-server
// and gives a durable, non-evicting store: AOF on (files appear in the data
// dir), fsync every second, noeviction.
func TestRedisConf(t *testing.T) {
	bin := NeedBinary(t, "redis-server", HintRedis)
	cm := render(t, "base").Set.ConfigMapByPrefix("pulse", "redis-config")
	if cm == nil {
		t.Fatal("no redis-config ConfigMap")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	// The pod's data volume is /data; here a temporary directory (redis
	// checks the directory while reading the file).
	text := cm.Data["redis.conf"]
	if RedisConf(text)["dir"] != "/data" || !strings.Contains(text, "\ndir /data\n") {
		t.Fatalf("redis.conf: want the line `dir /data`")
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(strings.Replace(text, "\ndir /data\n", "\ndir "+data+"\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := proctest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// As in the pod, plus what a test on a shared machine needs: loopback,
	// a free port, a temporary data dir.
	p := redisProc(bin, dir, "redis-conf", port, "t", conf)
	p.StartTest(t, syscall.SIGTERM)
	addr := p.Addr
	for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"} {
		got, err := respArray(addr, "t", "CONFIG", "GET", k)
		if err != nil || len(got) != 2 || got[1] != want {
			t.Errorf("CONFIG GET %s = %v %v, want %s", k, got, err, want)
		}
	}
	if _, err := respDo(addr, "t", "XADD", "pulse:metrics:{0}", "*", "d", "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the AOF in the data dir", func() error {
		m, _ := filepath.Glob(filepath.Join(data, "appendonlydir", "*.aof"))
		if len(m) == 0 {
			return fmt.Errorf("no AOF files in %s", data)
		}
		return nil
	})
}
