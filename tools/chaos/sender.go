package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is what one request tells about its events.
type outcome int

const (
	// acked: 202, every event is stored and must be analyzed.
	acked outcome = iota
	// uncertain: the request may or may not have stored its events (a
	// broken connection, a timeout, a 5xx or 429): each of them is
	// analyzed at most once.
	uncertain
	// refused: the request never reached ingest (the dial failed), so
	// nothing of it is stored.
	refused
	// rejected: 4xx for valid input; never right.
	rejected
)

// tracker counts, per device, the events in each outcome, and the acks
// over time (for the everysec loss bound).
//
// When Redis is wiped (FLUSHALL, an empty restart), what it held is gone
// and the results count only what came after: the tracker then counts
// each device's events relative to the latest wipe. A request sent after
// the wipe ended is after it; one answered before the wipe began is
// before it (its events are gone with everything else, whatever the
// answer); one under way across the wipe is in flight: its events may or
// may not have been stored after it.
type tracker struct {
	devices []string
	index   map[string]int
	acked   []atomic.Int64 // all 202s
	unsure  []atomic.Int64 // all uncertain

	sent, refused, rejected atomic.Int64
	requests                atomic.Int64

	mu       sync.Mutex
	start    time.Time
	buckets  []int64 // acks per ackBucket since start
	lastAck  time.Time
	rejectEx []string // a few rejected responses, for the report

	// Relative to the latest wipe (since the start, when none), under mu.
	epoch         int  // wipes begun
	wiping        bool // the latest wipe has begun and not ended
	ackedAfter    []int64
	unsureAfter   []int64 // uncertain after the wipe or across it
	ackedInFlight []int64 // answered 202 across the wipe
	ackedBefore   int64   // all devices: answered 202 before the latest wipe began
	unsureBefore  int64
}

// mark is when a request was sent, relative to the wipes.
type mark struct {
	epoch  int
	wiping bool
}

// now returns the mark of a request sent now.
func (t *tracker) now() mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	return mark{t.epoch, t.wiping}
}

// beginWipe is called before Redis is wiped: everything counted so far is
// before the wipe.
func (t *tracker) beginWipe() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.devices {
		t.ackedBefore += t.ackedAfter[i] + t.ackedInFlight[i]
		t.unsureBefore += t.unsureAfter[i]
		t.ackedAfter[i], t.ackedInFlight[i], t.unsureAfter[i] = 0, 0, 0
	}
	t.epoch++
	t.wiping = true
}

// endWipe is called once the wiped Redis serves again: requests sent from
// now on are after the wipe.
func (t *tracker) endWipe() {
	t.mu.Lock()
	t.wiping = false
	t.mu.Unlock()
}

// ackBucket is the resolution of the acks' timeline.
const ackBucket = 100 * time.Millisecond

func newTracker(devices []string, start time.Time) *tracker {
	t := &tracker{
		devices: devices,
		index:   make(map[string]int, len(devices)),
		acked:   make([]atomic.Int64, len(devices)),
		unsure:  make([]atomic.Int64, len(devices)),
		start:   start,

		ackedAfter:    make([]int64, len(devices)),
		unsureAfter:   make([]int64, len(devices)),
		ackedInFlight: make([]int64, len(devices)),
	}
	for i, d := range devices {
		t.index[d] = i
	}
	return t
}

// record counts a request's events (device indexes) in outcome o; sent
// is the tracker's mark when the request was sent, at when it was
// answered.
func (t *tracker) record(idx []int, o outcome, sent mark, at time.Time, detail string) {
	t.requests.Add(1)
	t.sent.Add(int64(len(idx)))
	t.mu.Lock()
	after := sent.epoch == t.epoch && !sent.wiping
	switch o {
	case acked:
		for _, i := range idx {
			if after {
				t.ackedAfter[i]++
			} else {
				t.ackedInFlight[i]++
			}
		}
	case uncertain:
		for _, i := range idx {
			t.unsureAfter[i]++
		}
	}
	t.mu.Unlock()
	switch o {
	case acked:
		for _, i := range idx {
			t.acked[i].Add(1)
		}
		t.mu.Lock()
		b := int(at.Sub(t.start) / ackBucket)
		for len(t.buckets) <= b {
			t.buckets = append(t.buckets, 0)
		}
		t.buckets[max(b, 0)] += int64(len(idx))
		if at.After(t.lastAck) {
			t.lastAck = at
		}
		t.mu.Unlock()
	case uncertain:
		for _, i := range idx {
			t.unsure[i].Add(1)
		}
	case refused:
		t.refused.Add(int64(len(idx)))
	case rejected:
		t.rejected.Add(int64(len(idx)))
		t.mu.Lock()
		if len(t.rejectEx) < 5 {
			t.rejectEx = append(t.rejectEx, detail)
		}
		t.mu.Unlock()
	}
}

// ackedBetween counts the events acknowledged in (from, to].
func (t *tracker) ackedBetween(from, to time.Time) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for b, c := range t.buckets {
		at := t.start.Add(time.Duration(b) * ackBucket)
		// A bucket counts when it overlaps the interval: the bound errs
		// on the generous side by at most one bucket at each end.
		if at.Add(ackBucket).After(from) && !at.After(to) {
			n += c
		}
	}
	return n
}

// counts returns each device's events relative to the latest wipe, with
// analyzed[i] as its analyzed count, and the events answered before the
// wipe began (202 and uncertain, all devices): those are gone.
func (t *tracker) counts(analyzed []int64) (c []DeviceCount, ackedBefore, unsureBefore int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c = make([]DeviceCount, len(t.devices))
	for i, d := range t.devices {
		c[i] = DeviceCount{Device: d, Acked: t.ackedAfter[i], Uncertain: t.unsureAfter[i], InFlight: t.ackedInFlight[i], Analyzed: analyzed[i]}
	}
	return c, t.ackedBefore, t.unsureBefore
}

// totals returns the events acknowledged and uncertain, all devices.
func (t *tracker) totals() (ack, unsure int64) {
	for i := range t.devices {
		ack += t.acked[i].Load()
		unsure += t.unsure[i].Load()
	}
	return ack, unsure
}

// sender posts batches of valid events for random devices to the ingests,
// never sending an event twice.
type sender struct {
	t        *tracker
	n        int      // devices to choose from: the first n of the tracker's
	urls     []string // ingests' base URLs, used in turn
	first    int      // the first request goes to urls[first % len(urls)]
	batch    int
	perSec   float64 // events per second for this sender; 0: no pacing
	budget   *atomic.Int64
	client   *http.Client
	rng      *rand.Rand
	baseRPS  []float64
	errPause time.Duration
}

// run posts until the time is up, ctx ends or the shared budget of events
// is spent. A request under way when the time is up is finished, not cut:
// only the faults make outcomes uncertain.
func (s *sender) run(ctx context.Context, until time.Time) {
	var next time.Time
	var interval time.Duration
	if s.perSec > 0 {
		interval = time.Duration(float64(s.batch) / s.perSec * float64(time.Second))
		next = time.Now()
	}
	idx := make([]int, 0, s.batch)
	var body bytes.Buffer
	turn := s.first
	for ctx.Err() == nil && time.Now().Before(until) {
		if interval > 0 {
			if d := min(time.Until(next), time.Until(until)); d > 0 {
				sleep(ctx, d)
			}
			if !time.Now().Before(until) {
				return
			}
			next = next.Add(interval)
			if behind := time.Since(next); behind > 2*time.Second {
				next = time.Now() // after an outage, do not burst to catch up
			}
		}
		if s.budget.Add(-int64(s.batch)) < 0 {
			return
		}
		idx = idx[:0]
		body.Reset()
		body.WriteByte('[')
		for i := 0; i < s.batch; i++ {
			d := s.rng.IntN(s.n)
			idx = append(idx, d)
			if i > 0 {
				body.WriteByte(',')
			}
			s.writeEvent(&body, d)
		}
		body.WriteByte(']')
		url := s.urls[turn%len(s.urls)]
		turn++
		sent := s.t.now()
		o, detail := s.post(ctx, url+"/metrics", body.Bytes())
		if ctx.Err() != nil && o != acked {
			// Our own cancellation: the request may have reached ingest.
			o = uncertain
		}
		s.t.record(idx, o, sent, time.Now(), detail)
		if o != acked {
			sleep(ctx, min(s.errPause, time.Until(until)))
		}
	}
}

// writeEvent appends one valid event of device d: cpu in [0, 100], rps ≥ 0,
// no timestamp (ingest stamps the time of receipt).
func (s *sender) writeEvent(b *bytes.Buffer, d int) {
	cpu := math.Round(100*math.Min(100, math.Max(0, 40+10*s.rng.NormFloat64()))) / 100
	rps := math.Max(0, s.baseRPS[d]+15*s.rng.NormFloat64())
	if s.rng.IntN(20) == 0 {
		rps += 200
	}
	b.WriteString(`{"device_id":"`)
	b.WriteString(s.t.devices[d])
	b.WriteString(`","cpu":`)
	b.WriteString(strconv.FormatFloat(cpu, 'g', -1, 64))
	b.WriteString(`,"rps":`)
	b.WriteString(strconv.FormatFloat(rps, 'g', -1, 64))
	b.WriteByte('}')
}

// post sends one request and classifies the answer.
func (s *sender) post(ctx context.Context, url string, body []byte) (outcome, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return refused, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return classifyError(err), err.Error()
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return classifyStatus(resp.StatusCode), fmt.Sprintf("%d %s", resp.StatusCode, msg)
}

// classifyStatus maps a status to an outcome: 202 is the only yes; a 4xx
// other than 429 refuses valid input, which is a failure of its own; any
// other answer (5xx, 429) is taken as possibly stored: only what provably
// never reached ingest counts as refused.
func classifyStatus(code int) outcome {
	switch {
	case code == http.StatusAccepted:
		return acked
	case code >= 400 && code < 500 && code != http.StatusTooManyRequests:
		return rejected
	}
	return uncertain
}

// classifyError: a failed dial never reached ingest; anything else (reset,
// EOF, timeout) may have come after ingest stored the events.
func classifyError(err error) outcome {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return refused
	}
	return uncertain
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
