// Package alertmanagertest runs a real Prometheus Alertmanager (Debian's
// prometheus-alertmanager) on a free loopback port for tests, clustering
// off, with a webhook receiver the test serves.
package alertmanagertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Notification is one webhook notification, as Alertmanager's webhook
// receiver sends it (payload version 4).
type Notification struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // firing or resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`

	Received time.Time `json:"-"` // when the receiver got it
	Raw      []byte    `json:"-"` // the body as sent
}

// Alert is one alert of a notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Receiver is a webhook receiver that records every notification.
type Receiver struct {
	URL string // the webhook URL for Alertmanager's configuration

	mu  sync.Mutex
	got []Notification
}

// NewReceiver serves a webhook receiver on a loopback port until the test
// ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var n Notification
		if err == nil {
			err = json.Unmarshal(body, &n)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			t.Errorf("webhook: bad notification: %v\n%s", err, body)
			return
		}
		n.Received, n.Raw = time.Now(), body
		r.mu.Lock()
		r.got = append(r.got, n)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hook"
	return r
}

// Notifications returns every notification received so far.
func (r *Receiver) Notifications() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.got...)
}

// WaitFor waits until ok holds for the notifications received, and returns
// them; the test fails when that takes longer than timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, ok func([]Notification) bool) []Notification {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.Notifications()
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s; %d notifications: %s", timeout, what, len(got), summary(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func summary(ns []Notification) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "\n  %s %s (%d alerts)", n.Status, n.GroupKey, len(n.Alerts))
	}
	return b.String()
}

// Config is the route of the test's Alertmanager. Zero durations take the
// defaults: group_wait 0s, group_interval 100ms, repeat_interval 1h (no
// repeats within a test).
type Config struct {
	GroupBy        []string // default alertname, device_id, signal
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
}

func (c Config) yaml(webhook string) string {
	if len(c.GroupBy) == 0 {
		c.GroupBy = []string{"alertname", "device_id", "signal"}
	}
	if c.GroupInterval <= 0 {
		c.GroupInterval = 100 * time.Millisecond
	}
	if c.RepeatInterval <= 0 {
		c.RepeatInterval = time.Hour
	}
	return fmt.Sprintf(`route:
  receiver: test
  group_by: [%s]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
receivers:
  - name: test
    webhook_configs:
      - url: %s
        send_resolved: true
`, strings.Join(c.GroupBy, ", "), dur(c.GroupWait), dur(c.GroupInterval), dur(c.RepeatInterval), webhook)
}

// dur writes d as Alertmanager's durations do: whole milliseconds.
func dur(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// Alertmanager is one alertmanager process.
type Alertmanager struct {
	URL  string // base URL, http://127.0.0.1:port
	Port int
	dir  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Binary finds Alertmanager: prometheus-alertmanager (Debian) or
// alertmanager on PATH, or Debian's /usr/bin/prometheus-alertmanager.
func Binary() (string, error) {
	for _, name := range []string{"prometheus-alertmanager", "alertmanager", "/usr/bin/prometheus-alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Alertmanager binary (apt-get install prometheus-alertmanager)")
}

// Start runs Alertmanager on a free loopback port, clustering off, its
// notifications going to webhook, and stops it when the test ends. The
// test is skipped when Alertmanager is not installed.
func Start(t testing.TB, webhook string, cfg Config) *Alertmanager {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte(cfg.yaml(webhook)), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		a := &Alertmanager{URL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, dir: dir}
		a.args = []string{bin,
			"--config.file=" + conf,
			"--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
			"--web.external-url=" + a.URL,
			"--cluster.listen-address=", // no gossip: one standalone instance
			"--log.level=info",
		}
		if lastErr = a.start(); lastErr == nil {
			t.Cleanup(func() {
				a.Stop()
				if t.Failed() {
					if log, err := os.ReadFile(a.logPath()); err == nil {
						t.Logf("alertmanager on port %d logged:\n%s", a.Port, tail(log, 4000))
					}
				}
			})
			return a
		}
	}
	t.Fatalf("start alertmanager: %v", lastErr)
	return nil
}

func (a *Alertmanager) logPath() string { return filepath.Join(a.dir, "alertmanager.log") }

func (a *Alertmanager) start() error {
	log, err := os.OpenFile(a.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(a.args[0], a.args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", a.args[0], err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	a.mu.Lock()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			a.mu.Lock()
			a.cmd = nil
			a.mu.Unlock()
			return fmt.Errorf("alertmanager exited at start (port %d taken?): %s", a.Port, tail(readFile(a.logPath()), 2000))
		default:
		}
		if ready(a.URL) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.Kill()
	return fmt.Errorf("alertmanager not ready within 15s on %s", a.URL)
}

func ready(base string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Restart starts Alertmanager again on its port, after Stop or Kill. Its
// alerts are gone (Alertmanager keeps them in memory); its notification
// log and silences are not.
func (a *Alertmanager) Restart(t testing.TB) {
	t.Helper()
	var err error
	// The port may linger briefly after the old process is gone.
	for attempt := 0; attempt < 50; attempt++ {
		if err = a.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restart alertmanager: %v", err)
}

// Stop stops Alertmanager gracefully (SIGTERM) and waits for it to exit.
func (a *Alertmanager) Stop() { a.signal(syscall.SIGTERM) }

// Kill stops Alertmanager at once, as a crash would (SIGKILL).
func (a *Alertmanager) Kill() { a.signal(syscall.SIGKILL) }

func (a *Alertmanager) signal(sig syscall.Signal) {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	// The port must be free before a restart.
	for i := 0; i < 100 && portOpen(a.Port); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// GettableAlert is an alert as GET /api/v2/alerts returns it.
type GettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// Alerts returns Alertmanager's active alerts (GET /api/v2/alerts).
func (a *Alertmanager) Alerts(t testing.TB) []GettableAlert {
	t.Helper()
	resp, err := http.Get(a.URL + "/api/v2/alerts")
	if err != nil {
		t.Fatalf("get alerts: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get alerts: %s: %s", resp.Status, body)
	}
	var out []GettableAlert
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("get alerts: %v\n%s", err, body)
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readFile(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

func tail(b []byte, n int) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
