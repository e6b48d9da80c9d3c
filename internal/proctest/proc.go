//go:build unix

package proctest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/logcapture"
)

// DefaultReadyWithin is how long Start waits for Ready when ReadyWithin is
// 0: generous, because the machine may be busy and Redis may be replaying
// its AOF.
const DefaultReadyWithin = 60 * time.Second

// StopGrace is how long a stop with a signal other than SIGKILL waits
// before it sends SIGKILL.
const StopGrace = 10 * time.Second

// Proc is one supervised process: started, signalled, paused, stopped
// and started again with the same arguments, address and log, with every
// exit it did not cause noted. Set the fields before the first Start and
// leave them alone afterwards; the methods are safe for concurrent use.
type Proc struct {
	Name string   // in logs, errors and reports, e.g. "analyzer-1"
	Argv []string // the binary and its arguments
	// Env is added to the environment this process runs with, after it:
	// for a variable set twice, the later value counts.
	Env []string
	// OnlyEnv makes Env the whole environment: nothing of ours leaks in.
	OnlyEnv bool
	Addr    string // host:port it listens on, for URL; "" when none
	// Log is a file that every launch appends its output to, after a line
	// naming the launch. With no Log, the output is kept in memory.
	Log string
	// Ready reports whether the process serves; Start polls it. nil:
	// started means ready.
	Ready func(ctx context.Context) error
	// ReadyWithin bounds Start's wait for Ready (DefaultReadyWithin if 0).
	ReadyWithin time.Duration
	// Group runs the process in its own process group and signals the
	// whole group: redis-server forks for AOF rewrites, and the child
	// must not outlive the parent it belongs to.
	Group bool

	mu         sync.Mutex
	run        *launch // the current launch; nil before Start and after Stop
	launches   int
	unexpected []string
	mem        logcapture.Buffer // the output when there is no Log
}

// launch is one run of the process.
type launch struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has exited
	expected bool          // we are stopping it; under Proc.mu
}

// Start launches the process and waits until Ready answers, up to
// ReadyWithin, or ctx ends. A process that exits or does not answer in
// that time is killed, and the error says which; ctx's error is wrapped.
func (p *Proc) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.run != nil && !exited(p.run) {
		p.mu.Unlock()
		return fmt.Errorf("start %s: already running", p.Name)
	}
	out, closeOut, err := p.output()
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.launches++
	fmt.Fprintf(out, "=== launch %d of %s at %s\n", p.launches, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	if p.OnlyEnv {
		cmd.Env = append([]string{}, p.Env...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// An output in memory is copied through a pipe that a forked child
	// could hold open: Wait gives up on it a second after the exit.
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = sysProcAttr(p.Group)
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		closeOut()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	l := &launch{cmd: cmd, done: make(chan struct{})}
	p.run = l
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		closeOut()
		p.mu.Lock()
		if !l.expected {
			msg := fmt.Sprintf("%s exited by itself at %s: %v", p.Name, time.Now().Format("15:04:05.000"), err)
			if p.Log != "" {
				msg += " (log " + p.Log + ")"
			}
			p.unexpected = append(p.unexpected, msg)
		}
		p.mu.Unlock()
		close(l.done)
	}()
	if p.Ready == nil {
		return nil
	}
	within := p.ReadyWithin
	if within <= 0 {
		within = DefaultReadyWithin
	}
	deadline := time.Now().Add(within)
	for {
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		err := p.Ready(tctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-l.done:
			return fmt.Errorf("%s exited during start%s", p.Name, p.seeLog())
		default:
		}
		if ctx.Err() != nil {
			p.Kill()
			return fmt.Errorf("start %s: %w", p.Name, ctx.Err())
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("%s did not answer within %v: %v%s", p.Name, within, err, p.seeLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// output returns where this launch writes; closeOut closes a log file.
func (p *Proc) output() (out io.Writer, closeOut func(), err error) {
	if p.Log == "" {
		return &p.mem, func() {}, nil
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func (p *Proc) seeLog() string {
	if p.Log == "" {
		return ""
	}
	return "; see " + p.Log
}

func exited(l *launch) bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Stop sends sig (to the group, for a Group) and waits for the exit; a
// process still running grace later is killed (SIGKILL), and the error
// says so. It does nothing when the process is not running.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	l := p.run
	p.run = nil
	if l == nil {
		p.mu.Unlock()
		return nil
	}
	l.expected = true
	p.mu.Unlock()
	if exited(l) {
		return nil // its pid may already be another process's
	}
	p.signal(l.cmd, sig)
	if sig == syscall.SIGKILL {
		<-l.done
		return nil
	}
	select {
	case <-l.done:
		return nil
	case <-time.After(grace):
		p.signal(l.cmd, syscall.SIGKILL)
		<-l.done
		return fmt.Errorf("%s did not exit within %v of %v: killed", p.Name, grace, sig)
	}
}

// Kill stops the process at once, as a crash would (SIGKILL), and waits
// for the exit.
func (p *Proc) Kill() { p.Stop(syscall.SIGKILL, 0) }

// Pause stops the process (SIGSTOP) for d, then lets it go on (SIGCONT).
func (p *Proc) Pause(d time.Duration) error {
	p.mu.Lock()
	l := p.run
	p.mu.Unlock()
	if l == nil || exited(l) {
		return fmt.Errorf("pause %s: not running", p.Name)
	}
	if err := p.signal(l.cmd, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %s: %w", p.Name, err)
	}
	time.Sleep(d)
	if err := p.signal(l.cmd, syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %s: %w", p.Name, err)
	}
	return nil
}

func (p *Proc) signal(cmd *exec.Cmd, sig syscall.Signal) error {
	if p.Group {
		return syscall.Kill(-cmd.Process.Pid, sig)
	}
	return cmd.Process.Signal(sig)
}

// Running reports whether the process is up: started, not stopped and
// not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run != nil && !exited(p.run)
}

// Pid returns the process id of the current launch, 0 when there is none.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return 0
	}
	return p.run.cmd.Process.Pid
}

// Exits returns the exits we did not cause, one line each.
func (p *Proc) Exits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// URL is path on the process's HTTP listener.
func (p *Proc) URL(path string) string { return "http://" + p.Addr + path }

// Tail returns the last n bytes of the process's output, all launches.
func (p *Proc) Tail(n int) string {
	var b []byte
	if p.Log != "" {
		b, _ = os.ReadFile(p.Log)
	} else {
		b = []byte(p.mem.String())
	}
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}

// StartTest starts p for test t, failing t when it cannot, and at t's
// end stops it with sig (see Stop, StopGrace) and shows the end of its
// output if t failed.
func (p *Proc) StartTest(t testing.TB, sig syscall.Signal) {
	t.Helper()
	t.Cleanup(func() {
		if err := p.Stop(sig, StopGrace); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("--- %s output (end) ---\n%s", p.Name, p.Tail(4000))
		}
	})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// GetOK GETs url with c and wants 200 OK.
func GetOK(ctx context.Context, c *http.Client, url string) error {
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

// Service returns the Pulse service kind (ingest, analyzer or api) of
// binDir as a Proc called name, on a free loopback address (HTTP_ADDR,
// before env) and ready once its /health answers 200. Its output stays in
// memory unless Log is set before Start.
func Service(binDir, kind, name string, env ...string) (*Proc, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Proc{
		Name: name,
		Argv: []string{filepath.Join(binDir, kind)},
		Env:  append([]string{"HTTP_ADDR=" + addr}, env...),
		Addr: addr,
	}
	p.Ready = func(ctx context.Context) error { return GetOK(ctx, http.DefaultClient, p.URL("/health")) }
	return p, nil
}
