package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/redistest"
)

var (
	binDir string
	redis  *redistest.Server
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain builds the three binaries, then runs the tests with a
// redis-server of the package's.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pulse-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	root, err := proctest.RepoRoot()
	if err == nil {
		_, err = proctest.Build(context.Background(), proctest.BuildOptions{Root: root, Dir: dir})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return redistest.Main(m, &redis)
}

// service is one running binary.
type service struct {
	*proctest.Proc
	t *testing.T
}

// start runs binary name with env on a free loopback port and waits for
// its /health. It is stopped (SIGKILL if still running) at cleanup, its
// output shown if the test failed.
func start(t *testing.T, name string, env ...string) *service {
	t.Helper()
	// env comes last: for a variable set twice, the last value counts (a
	// REDIS_ADDR of the test's own server, say).
	p, err := proctest.Service(binDir, name, name, append([]string{"REDIS_ADDR=" + redis.Addr, "LOG_LEVEL=info"}, env...)...)
	if err != nil {
		t.Fatal(err)
	}
	p.ReadyWithin = 20 * time.Second
	p.StartTest(t, syscall.SIGKILL)
	return &service{Proc: p, t: t}
}

// launch starts the service again, on the same address.
func (s *service) launch() {
	s.t.Helper()
	if err := s.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

// signal sends sig and waits for the process to exit.
func (s *service) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.Stop(sig, 30*time.Second); err != nil {
		s.t.Error(err)
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode
}

func postJSON(url string, v any) (int, string, error) {
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
