package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/logcapture"
	"github.com/pulse-iot/pulse/internal/redistest"
)

var (
	binDir string
	redis  *redistest.Server
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pulse-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := buildServices(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	redis, err = redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer redis.Stop()
	return m.Run()
}

// buildServices builds the three binaries from the workspace root.
func buildServices(dir string) error {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		return fmt.Errorf("go env GOWORK: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "build", "-o", dir+"/", "./ingest", "./analyzer", "./api")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build services in %s: %w", root, err)
	}
	return nil
}

// service is one running binary.
type service struct {
	t    *testing.T
	name string
	addr string
	env  []string
	cmd  *exec.Cmd
	logs *logcapture.Buffer
	done chan struct{}
}

// start runs binary name with env on a free loopback port and waits for
// its /health. It is stopped (SIGKILL if still running) at cleanup.
func start(t *testing.T, name string, env ...string) *service {
	t.Helper()
	s := &service{t: t, name: name, env: env, addr: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	s.launch()
	t.Cleanup(func() {
		s.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, tail(s.logs.String(), 3000))
		}
	})
	return s
}

func (s *service) launch() {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, s.name))
	// s.env comes last: for a variable set twice, the last value counts
	// (a REDIS_ADDR of the test's own server, say).
	cmd.Env = append(os.Environ(), append([]string{"HTTP_ADDR=" + s.addr, "REDIS_ADDR=" + redis.Addr, "LOG_LEVEL=info"}, s.env...)...)
	s.logs = &logcapture.Buffer{}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	waitFor(s.t, 20*time.Second, s.name+" /health", func() bool {
		resp, err := http.Get("http://" + s.addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// signal sends sig and waits for the process to exit.
func (s *service) signal(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("%s did not exit within 30s of %v", s.name, sig)
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *service) url(path string) string { return "http://" + s.addr + path }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
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
