package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/backoff"
)

// Options configure a Sender. URLs is required; zero values of the rest
// take the defaults.
type Options struct {
	URLs          []string      // Alertmanager base URLs (ParseURLs)
	Resend        time.Duration // how often open alerts are re-sent; DefaultResend
	LinkBase      string        // the api's base URL for links (ParseLinkBase); "" for none
	CriticalScore float64       // score from which alerts are critical; DefaultCriticalScore
	Timeout       time.Duration // per post; 10s, Prometheus' default
	BatchSize     int           // alerts per post; 64, as Prometheus
	// Poll is how often a shard's outbox is looked at without Wake: the
	// latest a takeover's leftovers are noticed. 1s.
	Poll time.Duration
	// Retries wait from MinBackoff, doubling to MaxBackoff, with jitter.
	// 200ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	Client                 *http.Client // http.DefaultClient's transport when nil
}

func (o *Options) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&o.Resend, DefaultResend)
	set(&o.Timeout, 10*time.Second)
	set(&o.Poll, time.Second)
	set(&o.MinBackoff, 200*time.Millisecond)
	set(&o.MaxBackoff, 30*time.Second)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 64
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
}

// Sender delivers the alerts of the shards it runs for to every configured
// Alertmanager. Run runs one shard's delivery; Wake asks every running
// shard to look at its outbox now.
type Sender struct {
	rdb     redis.Cmdable
	opt     Options
	enc     Encoder
	targets []target
	names   []string // every target's name: the cursor fields Ack needs
	log     *zap.Logger
	m       *metrics

	mu   sync.Mutex
	runs map[*shardRun]struct{}
}

// target is one Alertmanager.
type target struct {
	name string // base URL without password: logs, cursor field
	post string // its POST /api/v2/alerts URL
}

type shardRun struct{ wake []chan struct{} }

// New returns a Sender of opt's Alertmanagers, its metrics registered on
// reg. It fails without URLs: with ALERTMANAGER_URL empty, delivery is off
// and there is nothing to start.
func New(rdb redis.Cmdable, opt Options, reg prometheus.Registerer, log *zap.Logger) (*Sender, error) {
	if len(opt.URLs) == 0 {
		return nil, errors.New("notify: no Alertmanager URL")
	}
	opt.defaults()
	if opt.Resend < MinResend/10 {
		return nil, fmt.Errorf("notify: resend %v is too short", opt.Resend)
	}
	s := &Sender{
		rdb:  rdb,
		opt:  opt,
		enc:  Encoder{Resend: opt.Resend, LinkBase: opt.LinkBase, CriticalScore: opt.CriticalScore},
		log:  log.Named("notify"),
		m:    newMetrics(reg),
		runs: map[*shardRun]struct{}{},
	}
	for _, u := range opt.URLs {
		t := target{name: Redact(u), post: u + "/api/v2/alerts"}
		s.targets = append(s.targets, t)
		s.names = append(s.names, t.name)
	}
	return s, nil
}

// Wake asks every running shard to read its outbox now instead of at its
// next poll: the analyzer calls it after a batch that wrote alerts. It
// never blocks.
func (s *Sender) Wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.runs {
		for _, ch := range r.wake {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// Run delivers one shard's alerts until ctx ends: the outbox to every
// Alertmanager, each at its own pace, and the open alerts again every
// Resend. Run it while, and only while, this process owns the shard (one
// Run per shard at a time); a successor carries on from the cursors in
// Redis. It returns an error only for invalid keys: Redis and Alertmanager
// failures are logged, counted and retried.
func (s *Sender) Run(ctx context.Context, keys Keys) error {
	if err := keys.Validate(); err != nil {
		return err
	}
	r := &shardRun{}
	for range s.targets {
		r.wake = append(r.wake, make(chan struct{}, 1))
	}
	s.mu.Lock()
	s.runs[r] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.runs, r)
		s.mu.Unlock()
	}()

	var wg sync.WaitGroup
	for i := range s.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.deliver(ctx, keys, &s.targets[i], r.wake[i])
		}()
	}
	s.observe(ctx, keys)
	wg.Wait()
	return nil
}

// observe keeps the outbox gauge and the dropped count up to date until
// ctx ends, then takes this shard's part out of the gauge.
func (s *Sender) observe(ctx context.Context, keys Keys) {
	var size int64
	defer func() { s.m.outboxSize.Sub(float64(size)) }()
	tick := time.NewTicker(s.opt.Poll)
	defer tick.Stop()
	failing := false // logged once per outage, not every poll
	for {
		dropped, n, err := TakeStats(ctx, s.rdb, keys)
		switch {
		case err == nil:
			failing = false
			s.m.notifications.WithLabelValues(ResultDropped).Add(float64(dropped))
			s.m.outboxSize.Add(float64(n - size))
			size = n
			if dropped > 0 {
				s.log.Warn("alert outbox full: oldest alerts dropped", zap.String("outbox", keys.Outbox), zap.Int64("alerts", dropped))
			}
		case !failing && ctx.Err() == nil:
			failing = true
			s.log.Warn("alert outbox stats", zap.String("outbox", keys.Outbox), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// deliver sends one shard's outbox, and its open alerts every Resend, to
// one Alertmanager until ctx ends. Re-sends and outbox posts take turns in
// this one loop, so a re-send read before an alert closed is posted before
// that close: Alertmanager never sees a closed alert re-opened by a stale
// re-send.
func (s *Sender) deliver(ctx context.Context, keys Keys, t *target, wake <-chan struct{}) {
	log := s.log.With(zap.String("alertmanager", t.name), zap.String("outbox", keys.Outbox))
	var (
		cursor     string
		haveCursor bool
		nextResend time.Time // zero: re-send at once, so a new owner refreshes every Alertmanager
		failures   int
	)
	fail := func(what string, err error) {
		failures++
		wait := backoff.Jitter(backoff.Delay(failures, s.opt.MinBackoff, s.opt.MaxBackoff))
		if ctx.Err() == nil {
			log.Warn(what, zap.Int("attempt", failures), zap.Duration("retry_in", wait), zap.Error(err))
		}
		backoff.Sleep(ctx, wait)
	}
	for ctx.Err() == nil {
		if !haveCursor {
			c, err := Cursor(ctx, s.rdb, keys, t.name)
			if err != nil {
				fail("alert cursor", err)
				continue
			}
			cursor, haveCursor = c, true
		}
		if !time.Now().Before(nextResend) {
			if err := s.resend(ctx, keys, t); err != nil {
				fail("re-send open alerts", err)
				continue
			}
			nextResend = time.Now().Add(s.opt.Resend)
		}
		entries, err := Peek(ctx, s.rdb, keys, cursor, s.opt.BatchSize)
		if err != nil {
			fail("read alert outbox", err)
			continue
		}
		if len(entries) == 0 {
			failures = 0
			s.wait(ctx, wake, nextResend)
			continue
		}
		alerts := make([]Alert, 0, len(entries))
		for _, e := range entries {
			if e.Err != nil {
				s.m.notifications.WithLabelValues(ResultRejected).Inc()
				log.Error("unreadable alert record skipped", zap.String("stream_id", e.ID), zap.Error(e.Err))
				continue
			}
			alerts = append(alerts, e.Alert)
		}
		if len(alerts) > 0 {
			rejected, err := s.post(ctx, t, alerts)
			if err != nil {
				fail("post alerts", err)
				continue
			}
			if !rejected {
				s.m.notifications.WithLabelValues(ResultSent).Add(float64(len(alerts)))
				now := time.Now()
				for _, e := range entries {
					if e.Err == nil {
						s.m.latency.Observe(max(now.Sub(e.Queued), 0).Seconds())
					}
				}
			}
		}
		last := entries[len(entries)-1].ID
		if _, err := Ack(ctx, s.rdb, keys, t.name, last, s.names); err != nil {
			// Delivered but not recorded: the next attempt posts these
			// again, which Alertmanager takes as the same alerts.
			fail("ack delivered alerts", err)
			continue
		}
		cursor, failures = last, 0
	}
}

// resend posts the shard's open alerts.
func (s *Sender) resend(ctx context.Context, keys Keys, t *target) error {
	bad, err := OpenAlerts(ctx, s.rdb, keys, s.opt.BatchSize, func(alerts []Alert) error {
		rejected, err := s.post(ctx, t, alerts)
		if err == nil && !rejected {
			s.m.notifications.WithLabelValues(ResultResent).Add(float64(len(alerts)))
		}
		return err
	})
	if bad > 0 {
		s.m.notifications.WithLabelValues(ResultRejected).Add(float64(bad))
		s.log.Error("unreadable open-alert records skipped", zap.String("hash", keys.Open), zap.Int("alerts", bad))
	}
	return err
}

// wait returns when woken, at the next poll, at the next re-send, or when
// ctx ends, whichever comes first.
func (s *Sender) wait(ctx context.Context, wake <-chan struct{}, nextResend time.Time) {
	d := min(s.opt.Poll, time.Until(nextResend))
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-timer.C:
	}
}

// errStatus is an Alertmanager answer other than 200 or 400.
type errStatus struct {
	code int
	body string
}

func (e *errStatus) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.body) }

// post sends alerts to t in one request. A 400 means Alertmanager stored
// the valid alerts of the batch and refused the others: that is final, so
// it returns rejected with no error (retrying cannot help); every other
// failure is an error, to be retried.
func (s *Sender) post(ctx context.Context, t *target, alerts []Alert) (rejected bool, err error) {
	body, err := s.enc.Encode(alerts, time.Now())
	if err != nil {
		return false, fmt.Errorf("encode alerts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.post, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("post %s: %w", t.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pulse-analyzer")
	resp, err := s.opt.Client.Do(req)
	if err != nil {
		s.m.notifications.WithLabelValues(ResultFailed).Add(float64(len(alerts)))
		// net/http strips the password from the URL in its errors.
		return false, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // so the connection is reused
	switch {
	case resp.StatusCode/100 == 2:
		return false, nil
	case resp.StatusCode == http.StatusBadRequest:
		s.m.notifications.WithLabelValues(ResultRejected).Add(float64(len(alerts)))
		s.log.Error("Alertmanager rejected alerts", zap.String("alertmanager", t.name), zap.Int("alerts", len(alerts)), zap.ByteString("reason", msg))
		return true, nil
	default:
		s.m.notifications.WithLabelValues(ResultFailed).Add(float64(len(alerts)))
		return false, fmt.Errorf("post %s: %w", t.name, &errStatus{resp.StatusCode, string(bytes.TrimSpace(msg))})
	}
}
