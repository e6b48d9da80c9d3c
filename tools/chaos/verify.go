package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/backoff"
	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/internal/shard"
)

// probeTimeout bounds how long each ingest may take to accept again after
// the load.
const probeTimeout = 60 * time.Second

// verify lets the pipeline drain, reads every device's results and fills
// rep, with what is wrong in rep.Problems.
func (p *pipeline) verify(ctx context.Context, o Options, tr *tracker, rep *Report) {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	// Ingest recovered: each accepts a probe event (tracked like the others).
	for i, in := range p.ingests {
		if err := p.probe(ctx, tr, o.Devices+i, in); err != nil {
			rep.problem("ingest %s did not accept again after the faults: %v", in.Name, err)
		}
	}

	rdb := p.client()
	defer rdb.Close()
	start := time.Now()
	settled, why := p.drain(ctx, rdb, o.Drain)
	rep.DrainTime = time.Since(start)
	if !settled {
		rep.problem("the pipeline did not drain within %v: %s", o.Drain, why)
	}
	o.Logf("drained in %v", rep.DrainTime.Round(time.Millisecond))
	p.checkShards(ctx, rdb, o.Shards, rep)

	analyzed, err := p.analyzed(ctx, client, tr.devices)
	if err != nil {
		rep.problem("reading results through the api: %v", err)
	}
	var fleet struct {
		TotalProcessed int64 `json:"total_processed"`
	}
	if code, err := getJSON(ctx, client, p.api.URL("/analyze"), &fleet); err != nil || code != http.StatusOK {
		rep.problem("GET /analyze = %d, %v", code, err)
	}

	rep.Requests = tr.requests.Load()
	rep.Sent = tr.sent.Load()
	rep.Refused = tr.refused.Load()
	rep.Rejected = tr.rejected.Load()
	if rep.Rejected > 0 {
		rep.problem("valid events rejected with a 4xx: %d, e.g. %q", rep.Rejected, tr.rejectEx)
	}
	if analyzed != nil {
		counts, ackedBefore, unsureBefore := tr.counts(analyzed)
		rep.account(counts)
		// Answered before the latest wipe: gone with it, whatever the answer.
		rep.Acked += ackedBefore
		rep.Wiped += ackedBefore
		rep.Uncertain += unsureBefore
		if fleet.TotalProcessed != rep.Analyzed {
			rep.problem("fleet total_processed %d ≠ %d, the sum over devices", fleet.TotalProcessed, rep.Analyzed)
		}
	}
	if last := tr.lastAckTime(); !last.IsZero() {
		rep.AckRate = float64(rep.Acked) / last.Sub(tr.start).Seconds()
	}
	rep.LossBound = lossBound(o.Fsync, tr, rep.Faults)
	rep.judge()

	for _, f := range rep.Faults {
		if f.Err != nil {
			rep.problem("%s %s at %.1fs: %v", f.Kind, f.Target, f.At.Seconds(), f.Err)
		}
	}
	p.checkServices(ctx, client, rep)
}

// probe posts one event at a time to in until it answers 202.
func (p *pipeline) probe(ctx context.Context, tr *tracker, device int, in *proctest.Proc) error {
	s := &sender{client: &http.Client{Timeout: 10 * time.Second}}
	defer s.client.CloseIdleConnections()
	body := []byte(`[{"device_id":"` + tr.devices[device] + `","cpu":1,"rps":1}]`)
	deadline := time.Now().Add(probeTimeout)
	var last string
	for try := 0; try < 600 && time.Now().Before(deadline) && ctx.Err() == nil; try++ {
		sent := tr.now()
		o, detail := s.post(ctx, in.URL("/metrics"), body)
		tr.record([]int{device}, o, sent, time.Now(), detail)
		if o == acked {
			return nil
		}
		last = detail
		backoff.Sleep(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("no 202 within %v; last answer: %s", probeTimeout, last)
}

// drain waits until every shard is settled — every entry delivered,
// nothing pending, the lease held by a live analyzer — twice in a row a
// second apart with no new entry, or until timeout.
func (p *pipeline) drain(ctx context.Context, rdb *redis.Client, timeout time.Duration) (bool, string) {
	deadline := time.Now().Add(timeout)
	var prev string
	why := "not checked"
	for time.Now().Before(deadline) && ctx.Err() == nil {
		state, err := p.shardState(ctx, rdb)
		switch {
		case err != nil:
			why, prev = err.Error(), ""
		case state == prev:
			return true, ""
		default:
			why, prev = "", state
		}
		backoff.Sleep(ctx, time.Second)
	}
	if why == "" {
		why = "still moving"
	}
	return false, why
}

// shardState describes the shards when all are settled (to compare two
// looks), else returns why not.
func (p *pipeline) shardState(ctx context.Context, rdb *redis.Client) (string, error) {
	keys := shard.Keys{Prefix: keyPrefix}
	live := map[string]bool{}
	for _, a := range p.liveAnalyzers() {
		live[a.Name] = true
	}
	var b strings.Builder
	var why []string
	for s := 0; s < p.o.Shards; s++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		lease, err := rdb.Get(cctx, keys.Lease(s)).Result()
		if err != nil && err != redis.Nil {
			cancel()
			return "", fmt.Errorf("shard %d lease: %w", s, err)
		}
		owner, _, _ := strings.Cut(lease, ":")
		if !live[owner] {
			why = append(why, fmt.Sprintf("shard %d leased to %q, not a live analyzer", s, lease))
		}
		info, err := rdb.XInfoStream(cctx, keys.Stream(s)).Result()
		if err != nil {
			cancel()
			if strings.Contains(err.Error(), "no such key") {
				why = append(why, fmt.Sprintf("shard %d: no stream", s))
				continue
			}
			return "", fmt.Errorf("shard %d stream: %w", s, err)
		}
		groups, err := rdb.XInfoGroups(cctx, keys.Stream(s)).Result()
		cancel()
		if err != nil {
			return "", fmt.Errorf("shard %d groups: %w", s, err)
		}
		found := false
		for _, g := range groups {
			if g.Name != shard.Group {
				continue
			}
			found = true
			if g.Pending != 0 || g.LastDeliveredID != info.LastGeneratedID {
				why = append(why, fmt.Sprintf("shard %d: %d pending, delivered up to %s of %s", s, g.Pending, g.LastDeliveredID, info.LastGeneratedID))
			}
		}
		if !found {
			why = append(why, fmt.Sprintf("shard %d: no consumer group", s))
		}
		fmt.Fprintf(&b, "%d:%s:%s;", s, info.LastGeneratedID, lease)
	}
	if len(why) > 0 {
		return "", fmt.Errorf("%s", strings.Join(why, "; "))
	}
	return b.String(), nil
}

// checkShards records what is left pending and dead-lettered.
func (p *pipeline) checkShards(ctx context.Context, rdb *redis.Client, shards int, rep *Report) {
	keys := shard.Keys{Prefix: keyPrefix}
	for s := 0; s < shards; s++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pend, err := rdb.XPending(cctx, keys.Stream(s), shard.Group).Result()
		if err != nil {
			rep.problem("XPENDING shard %d: %v", s, err)
		} else {
			rep.Pending += pend.Count
		}
		n, err := rdb.XLen(cctx, keys.DeadLetter(s)).Result()
		cancel()
		if err != nil {
			rep.problem("XLEN dead letters of shard %d: %v", s, err)
		}
		rep.DeadLetters += n
	}
	if rep.Pending > 0 {
		rep.problem("%d entries still pending after the drain", rep.Pending)
	}
	if rep.DeadLetters > 0 {
		rep.problem("%d valid entries dead-lettered", rep.DeadLetters)
	}
}

// analyzed reads each device's total_processed through the api; a device
// it has never seen (404) has 0. Errors are retried for a while: the api
// must have recovered from the faults by itself.
func (p *pipeline) analyzed(ctx context.Context, client *http.Client, devices []string) ([]int64, error) {
	out := make([]int64, len(devices))
	deadline := time.Now().Add(60 * time.Second)
	for i, d := range devices {
		for {
			var v struct {
				TotalProcessed int64 `json:"total_processed"`
			}
			code, err := getJSON(ctx, client, p.api.URL("/analyze?device_id="+url.QueryEscape(d)), &v)
			if err == nil && (code == http.StatusOK || code == http.StatusNotFound) {
				out[i] = v.TotalProcessed
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, fmt.Errorf("GET /analyze?device_id=%s = %d, %v", d, code, err)
			}
			backoff.Sleep(ctx, 200*time.Millisecond)
		}
	}
	return out, nil
}

// checkServices: every process we run now is ready, none exited by
// itself, and no log shows a panic or a data race.
func (p *pipeline) checkServices(ctx context.Context, client *http.Client, rep *Report) {
	running := append(append([]*proctest.Proc{p.api}, p.ingests...), p.liveAnalyzers()...)
	for _, pr := range running {
		var err error
		for try := 0; try < 50; try++ {
			if err = proctest.GetOK(ctx, client, pr.URL("/ready")); err == nil {
				break
			}
			backoff.Sleep(ctx, 200*time.Millisecond)
		}
		if err != nil {
			rep.problem("%s not ready at the end: %v", pr.Name, err)
		}
	}
	for _, pr := range p.processes() {
		for _, e := range pr.Exits() {
			rep.problem("%s", e)
		}
		b, err := os.ReadFile(pr.Log)
		if err != nil {
			continue
		}
		for _, bad := range []string{"panic:", "fatal error:", "WARNING: DATA RACE"} {
			if i := bytes.Index(b, []byte(bad)); i >= 0 {
				rep.problem("%s log shows %q: %s", pr.Name, bad, firstLine(b[i:]))
			}
		}
	}
	sort.Strings(rep.Problems)
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

// lossBound is how many acknowledged events the run may lose: none with
// appendfsync always; with everysec, those acknowledged in the
// EverysecWindow before each Redis kill (and until the restart, for
// answers still on their way).
func lossBound(fsync string, tr *tracker, faults []Fault) int64 {
	if fsync != FsyncEverysec {
		return 0
	}
	var n int64
	for _, f := range faults {
		if (f.Kind == KillRedis || f.Kind == KillRedisRewriting) && !f.KilledAt.IsZero() {
			n += tr.ackedBetween(f.KilledAt.Add(-EverysecWindow), f.RestartAt)
		}
	}
	return n
}

func (t *tracker) lastAckTime() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastAck
}
