// Package redistest runs real redis-server processes on free loopback
// ports for tests. It never touches a Redis it did not start.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/proctest"
)

// Server is one redis-server process.
type Server struct {
	Addr string
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free loopback port with its files in a new
// temporary folder; extra arguments (e.g. "--appendonly", "yes") are
// added to the command line.
func Start(extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	dir, err := os.MkdirTemp("", "pulse-redis-")
	if err != nil {
		return nil, err
	}
	return startOnFreePort(dir, func(port int) ([]string, error) {
		return append([]string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning"}, extra...), nil
	})
}

// StartTest starts a server of the test's own, for a test that kills,
// restarts or pauses it, and stops it in the test's cleanup.
func StartTest(t testing.TB, extra ...string) *Server {
	t.Helper()
	s, err := Start(extra...)
	if err != nil {
		t.Fatalf("start redis: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// startOnFreePort starts a server with its files in dir on a free port,
// trying another when the port was taken in between; argv is its command
// line for a port. On failure dir is removed.
func startOnFreePort(dir string, argv func(port int) ([]string, error)) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := proctest.FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, dir: dir}
		if s.args, err = argv(port); err != nil {
			return nil, err
		}
		if lastErr = s.Restart(); lastErr == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// Restart starts the server again on the same port, after Kill or Stop.
func (s *Server) Restart() error {
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return errors.New("redis-server did not answer PING within 10s on " + s.Addr)
}

// Kill stops the server at once, as a crash would (SIGKILL).
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.dir)
}

// Client returns a plain client of this server.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr})
}

// Main runs a package's tests (m) with one redis-server started for them
// and stopped after, *srv set to it before m.Run: the tests share it
// through Prefix. It returns the exit code, for
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisSrv)) }
func Main(m *testing.M, srv **Server) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start redis:", err)
		return 1
	}
	defer s.Stop()
	*srv = s
	return m.Run()
}
