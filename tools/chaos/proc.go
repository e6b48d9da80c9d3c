package chaos

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a process may take to answer after start:
// generous, because the machine may be busy and Redis replays its AOF.
const startTimeout = 60 * time.Second

// proc is one supervised process: started, SIGKILLed and started again
// (same address, same log file), with every exit we did not cause noted.
type proc struct {
	name string   // for logs and reports, e.g. "analyzer-1"
	argv []string // binary and arguments
	env  []string // added to the environment
	addr string   // host:port it listens on
	log  string   // log file, appended to by every launch
	// ready reports whether the process answers; polled after start.
	ready func(ctx context.Context) error
	// group kills the whole process group (redis-server forks for AOF
	// rewrites; the child must not outlive the parent it belongs to).
	group bool

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	expected   bool     // the running process is being killed by us
	unexpected []string // exits we did not cause
	launches   int
}

// start launches the process and waits until it answers.
func (p *proc) start(ctx context.Context) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.launches++
	fmt.Fprintf(f, "=== chaos: launch %d of %s at %s\n", p.launches, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: nothing we start outlives the driver, even if it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: p.group, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expected = cmd, done, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		if !p.expected {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s exited by itself at %s: %v (log %s)",
				p.name, time.Now().Format("15:04:05.000"), err, p.log))
		}
		p.mu.Unlock()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := p.ready(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited during start; see %s", p.name, p.log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.kill()
			return fmt.Errorf("%s did not answer within %v: %v; see %s", p.name, startTimeout, err, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL (to the process group for a group) and waits for the
// exit. It does nothing when the process is not running.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.expected = true
	p.mu.Unlock()
	if p.group {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	} else {
		cmd.Process.Kill()
	}
	<-done
}

// pause stops the process (SIGSTOP) for d, then lets it go on (SIGCONT).
func (p *proc) pause(d time.Duration) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	time.Sleep(d)
	return cmd.Process.Signal(syscall.SIGCONT)
}

// running reports whether the process is up (started and not killed).
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exits returns the exits we did not cause.
func (p *proc) exits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// url is an address on the process's HTTP listener.
func (p *proc) url(path string) string { return "http://" + p.addr + path }

// newService returns a Pulse service (ingest, analyzer or api) to run
// from binDir on addr with env.
func newService(binDir, logDir, kind, name, addr string, env []string) *proc {
	p := &proc{
		name: name,
		argv: []string{filepath.Join(binDir, kind)},
		env:  append([]string{"HTTP_ADDR=" + addr}, env...),
		addr: addr,
		log:  filepath.Join(logDir, name+".log"),
	}
	client := &http.Client{Timeout: time.Second}
	p.ready = func(ctx context.Context) error { return httpOK(ctx, client, p.url("/health")) }
	return p
}

// newRedis returns a redis-server with AOF on addr, its data in dir.
func newRedis(logDir, dir, addr, fsync string) *proc {
	_, port, _ := net.SplitHostPort(addr)
	p := &proc{
		name: "redis",
		argv: []string{"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", fsync, "--save", "",
			"--daemonize", "no", "--loglevel", "notice"},
		addr:  addr,
		log:   filepath.Join(logDir, "redis.log"),
		group: true,
	}
	// LOADING (AOF replay) fails PING, so ready means serving.
	p.ready = func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	return p
}

func httpOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}
