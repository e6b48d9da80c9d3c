//go:build unix

package proctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// TestMain doubles as the helper process of the tests: with
// PROCTEST_HELPER set, the test binary serves /health on HTTP_ADDR.
func TestMain(m *testing.M) {
	if os.Getenv("PROCTEST_HELPER") != "" {
		helper()
		return
	}
	os.Exit(m.Run())
}

// helper serves /health on HTTP_ADDR until SIGTERM (ignored with
// IGNORE_TERM set); with CHILD set it first starts `sleep 60` and prints
// its pid.
func helper() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if os.Getenv("CHILD") != "" {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			fmt.Println("start child:", err)
			os.Exit(2)
		}
		fmt.Printf("child %d\n", c.Process.Pid)
	}
	fmt.Println("hello from", os.Getenv("HELPER_NAME"))
	l, err := net.Listen("tcp", os.Getenv("HTTP_ADDR"))
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range sigs {
		if os.Getenv("IGNORE_TERM") == "" {
			os.Exit(0)
		}
	}
}

func helperProc(t *testing.T, env ...string) *Proc {
	t.Helper()
	p, err := Service(filepath.Dir(os.Args[0]), filepath.Base(os.Args[0]), "helper",
		append([]string{"PROCTEST_HELPER=1", "HELPER_NAME=helper"}, env...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestFreeAddrIsFree(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("addr %q, want loopback", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the free %s: %v", addr, err)
	}
	l.Close()
}

// A process is stopped, started again on the same address, paused and
// resumed; what we cause is no unexpected exit, and its output of every
// launch is kept.
func TestProcLifecycle(t *testing.T) {
	p := helperProc(t)
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.Running() || p.Pid() == 0 {
		t.Fatalf("after start: running %v pid %d", p.Running(), p.Pid())
	}
	if err := p.Start(ctx); err == nil {
		t.Error("second start of a running process succeeded")
	}
	if err := p.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.Pid() != 0 || GetOK(ctx, http.DefaultClient, p.URL("/health")) == nil {
		t.Fatal("still running after stop")
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("restart on %s: %v", p.Addr, err)
	}

	paused := make(chan error, 1)
	go func() { paused <- p.Pause(1500 * time.Millisecond) }()
	time.Sleep(200 * time.Millisecond)
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := GetOK(pctx, http.DefaultClient, p.URL("/health"))
	cancel()
	if err == nil {
		t.Error("a paused process answered")
	}
	if err := <-paused; err != nil {
		t.Fatal(err)
	}
	if err := GetOK(ctx, http.DefaultClient, p.URL("/health")); err != nil {
		t.Errorf("after the pause: %v", err)
	}

	p.Kill()
	if e := p.Exits(); len(e) != 0 {
		t.Errorf("exits we caused were noted: %q", e)
	}
	out := p.Tail(10000)
	for _, want := range []string{"=== launch 1 of helper", "=== launch 2 of helper", "hello from helper"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := p.Pause(time.Millisecond); err == nil {
		t.Error("pause of a stopped process succeeded")
	}
}

// TestProcNotesExitsItDidNotCause: killed by us a process is quiet,
// exiting by itself it is reported, with its log file.
func TestProcNotesExitsItDidNotCause(t *testing.T) {
	dir := t.TempDir()
	p := &Proc{Name: "sleeper", Argv: []string{"sleep", "30"}, Log: filepath.Join(dir, "s.log"), Group: true,
		Ready: func(context.Context) error { return nil }}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("not running after start")
	}
	p.Kill()
	if p.Running() || len(p.Exits()) != 0 {
		t.Fatalf("after kill: running %v, exits %q", p.Running(), p.Exits())
	}
	q := &Proc{Name: "quitter", Argv: []string{"sh", "-c", "echo bye; exit 3"}, Log: filepath.Join(dir, "q.log"),
		Ready: func(context.Context) error { return errors.New("never ready") }}
	err := q.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited during start") || !strings.Contains(err.Error(), q.Log) {
		t.Fatalf("start of a process that exits at once: %v", err)
	}
	if e := q.Exits(); len(e) != 1 || !strings.Contains(e[0], "exit status 3") || !strings.Contains(e[0], q.Log) {
		t.Errorf("exits = %q, want one with exit status 3 and the log", e)
	}
	if b, _ := os.ReadFile(q.Log); !strings.Contains(string(b), "=== launch 1 of quitter") || !strings.Contains(string(b), "bye") {
		t.Errorf("log:\n%s", b)
	}
}

func TestProcStopEscalatesToSIGKILL(t *testing.T) {
	p := helperProc(t, "IGNORE_TERM=1")
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(syscall.SIGTERM, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stop of a process ignoring SIGTERM: %v, want it killed", err)
	}
	if p.Running() || len(p.Exits()) != 0 {
		t.Errorf("running %v, exits %q", p.Running(), p.Exits())
	}
}

func TestProcStartGivesUp(t *testing.T) {
	p := helperProc(t)
	p.Ready = func(context.Context) error { return errors.New("not yet") }
	p.ReadyWithin = 300 * time.Millisecond
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "did not answer within 300ms: not yet") {
		t.Errorf("start never ready: %v", err)
	}
	if p.Running() || len(p.Exits()) != 0 {
		t.Errorf("after giving up: running %v, exits %q", p.Running(), p.Exits())
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	p.ReadyWithin = time.Minute
	if err := p.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("start with ctx cancelled: %v, want context.Canceled", err)
	}
	if p.Running() {
		t.Error("running after a cancelled start")
	}
}

// A Group's kill reaches the children it forked.
func TestProcGroupKillTakesChildren(t *testing.T) {
	p := helperProc(t, "CHILD=1")
	p.Group = true
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var child int
	for _, line := range strings.Split(p.Tail(10000), "\n") {
		if v, ok := strings.CutPrefix(line, "child "); ok {
			child, _ = strconv.Atoi(v)
		}
	}
	if child == 0 {
		t.Fatalf("no child pid in:\n%s", p.Tail(10000))
	}
	p.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("child %d outlived its group's kill", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOnlyEnv(t *testing.T) {
	t.Setenv("PROCTEST_LEAK", "1")
	for _, only := range []bool{false, true} {
		p := &Proc{Name: "env", Argv: []string{"/usr/bin/env"}, Env: []string{"A=1"}, OnlyEnv: only}
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for p.Running() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		out := p.Tail(100000)
		if !strings.Contains(out, "\nA=1\n") || strings.Contains(out, "PROCTEST_LEAK=1") == only {
			t.Errorf("OnlyEnv %v: environment\n%s", only, out)
		}
	}
}

func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	root := t.TempDir()
	err := os.CopyFS(root, fstest.MapFS{
		"good/go.mod":  {Data: []byte("module example.com/good\n\ngo 1.22\n")},
		"good/main.go": {Data: []byte("package main\n\nfunc main() { println(\"good\") }\n")},
		"bad/go.mod":   {Data: []byte("module example.com/bad\n\ngo 1.22\n")},
		"bad/main.go":  {Data: []byte("package main\n\nfunc main() { undefinedThing() }\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := BuildOptions{Root: root, Dir: t.TempDir(), Flags: []string{"-trimpath"}, Env: []string{"GOWORK=off", "GOFLAGS="}}
	bins, err := Build(context.Background(), o, "good")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bins["good"]).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "good" {
		t.Errorf("built binary: %q %v", out, err)
	}
	if _, err := Build(context.Background(), o, "good", "bad"); err == nil || !strings.Contains(err.Error(), "undefinedThing") {
		t.Errorf("failed build: %v, want go's output", err)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if rel, err := filepath.Rel(root, wd); err != nil || rel != filepath.Join("internal", "proctest") {
		t.Errorf("root %s of %s", root, wd)
	}
	for _, s := range Services() {
		if _, err := os.Stat(filepath.Join(root, s, "go.mod")); err != nil {
			t.Errorf("service %s: %v", s, err)
		}
	}
}

// A run that listens, logs it and returns when cancelled, as the services'
// run does; one that fails at once.
func TestInProcess(t *testing.T) {
	run := func(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
		if getenv("FAIL") != "" {
			return errors.New("bad config")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		fmt.Fprintf(stdout, "{\"logger\":\"svc\",\"msg\":\"listening\",\"addr\":%q}\n", l.Addr())
		fmt.Fprintf(stdout, "{\"logger\":\"svc.admin\",\"msg\":\"listening\",\"addr\":\"127.0.0.1:9\"}\n")
		<-ctx.Done()
		return errors.New("stopped")
	}
	s := StartInProcess(t, "svc-1", "svc", run, func(string) string { return "" })
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || s.URL == "http://127.0.0.1:9" {
		t.Errorf("URL %q", s.URL)
	}
	if got := s.AdminURL(t, "svc.admin"); got != "http://127.0.0.1:9" {
		t.Errorf("AdminURL = %q, want the svc.admin line's address", got)
	}
	if err := s.Stop(t, 5*time.Second); err == nil || err.Error() != "stopped" {
		t.Errorf("Stop = %v, want run's result", err)
	}
	if err := s.Wait(t, time.Second); err == nil || err.Error() != "stopped" {
		t.Errorf("Wait after Stop = %v, want run's result again", err)
	}
}

// The loop runs until stop, which cancels its context and waits for it.
func TestStartLoop(t *testing.T) {
	var ran, returned atomic.Bool
	stop := StartLoop(t, "loop", func(ctx context.Context) error {
		ran.Store(true)
		<-ctx.Done()
		returned.Store(true)
		return nil
	})
	for deadline := time.Now().Add(5 * time.Second); !ran.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("loop not started within 5s")
		}
	}
	if returned.Load() {
		t.Fatal("loop returned before stop")
	}
	stop()
	if !returned.Load() {
		t.Error("stop returned before the loop did")
	}
}
