package proctest

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/logcapture"
)

// RunFunc is a service's run, called as its main calls it.
type RunFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer) error

// InProcess is a service's run called inside the test process: the whole
// service as main wires it, without building a binary.
type InProcess struct {
	URL string             // http:// and the address of its "listening" line
	Log *logcapture.Buffer // all it logged

	name   string
	cancel context.CancelFunc
	done   chan error // holds run's result once it returned
}

// StartInProcess calls run with getenv in a goroutine and waits up to 15 s
// for the "listening" line of logger (e.g. "ingest"); name is for
// messages. At t's end it cancels run, waits up to 30 s for it to return
// and shows the log if t failed.
func StartInProcess(t testing.TB, name, logger string, run RunFunc, getenv func(string) string) *InProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &InProcess{Log: &logcapture.Buffer{}, name: name, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, getenv, s.Log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			s.done <- err
		case <-time.After(30 * time.Second):
			t.Errorf("%s: run did not return within 30s of cancel", name)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, s.Log.String())
		}
	})
	s.URL = s.listening(t, logger)
	return s
}

// AdminURL waits up to 15 s for the "listening" line of logger, the
// service's second listener (e.g. "ingest.admin"), and returns its URL.
func (s *InProcess) AdminURL(t testing.TB, logger string) string {
	t.Helper()
	return s.listening(t, logger)
}

func (s *InProcess) listening(t testing.TB, logger string) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if addr := s.Log.ListenAddr(logger); addr != "" {
			return "http://" + addr
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("%s: run returned before %s was listening: %v", s.name, logger, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no \"listening\" log line of %s within 15s; log:\n%s", s.name, logger, s.Log.String())
	return ""
}

// CheckAdminListener checks how a service splits its listeners: the one
// at admin (ADMIN_ADDR) serves the profiles and /health but not
// publicPath, one of the service's public routes; the public one at
// s.URL serves no profile.
func (s *InProcess) CheckAdminListener(t testing.TB, admin, publicPath string) {
	t.Helper()
	tests := []struct {
		url      string
		wantCode int
	}{
		{admin + "/debug/pprof/", http.StatusOK},
		{admin + "/debug/pprof/heap?debug=1", http.StatusOK},
		{admin + "/debug/pprof/goroutine?debug=1", http.StatusOK},
		{admin + "/health", http.StatusOK},
		{admin + publicPath, http.StatusNotFound},
		{s.URL + "/debug/pprof/", http.StatusNotFound},
		{s.URL + "/debug/pprof/heap", http.StatusNotFound},
		{s.URL + "/debug/pprof/goroutine", http.StatusNotFound},
		{s.URL + "/debug/pprof/cmdline", http.StatusNotFound},
	}
	// One connection per request, each read to its end: a spare connection
	// the client dialled but never used would hold the server's shutdown
	// (it waits up to 5 s for connections that have not sent a request).
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tt := range tests {
		resp, err := c.Get(tt.url)
		if err != nil {
			t.Errorf("GET %s: %v", tt.url, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode {
			t.Errorf("GET %s: %d %s, want %d", tt.url, resp.StatusCode, body, tt.wantCode)
		}
	}
}

// Cancel cancels run's ctx, as SIGTERM does to main; Wait returns run's
// result.
func (s *InProcess) Cancel() { s.cancel() }

// Wait returns run's result, failing t when run takes longer than limit.
func (s *InProcess) Wait(t testing.TB, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(limit):
		t.Fatalf("%s: run did not return within %v", s.name, limit)
		return nil
	}
}

// Stop cancels run and returns its result (see Wait).
func (s *InProcess) Stop(t testing.TB, limit time.Duration) error {
	t.Helper()
	s.Cancel()
	return s.Wait(t, limit)
}

// StartLoop runs loop, a background loop of a service (e.g. a watcher),
// in a goroutine until the function it returns is called: that cancels
// loop's context and fails t unless loop then returns nil within 5 s.
func StartLoop(t testing.TB, name string, loop func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s = %v, want nil after cancel", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not return within 5s of cancel", name)
		}
	}
}
