package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/poll"
	"github.com/pulse-iot/pulse/internal/promtext"
	"github.com/pulse-iot/pulse/internal/redistest"
	"github.com/pulse-iot/pulse/internal/shard"
)

// Redis loses everything while the pipeline runs — FLUSHALL, or a restart
// without persistence on the same port (a replica promoted empty looks
// the same to the services). What was stored before is gone, legitimately;
// every event acknowledged afterwards must be analyzed, exactly as the
// single-process reference does, with no service restarted, and the
// services must say they are fine only once they are.
func TestPipelineRecoversWhenRedisLosesEverything(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, srv *redistest.Server)
	}{
		{"FLUSHALL", func(t *testing.T, srv *redistest.Server) {
			c := srv.Client()
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"restart without persistence", func(t *testing.T, srv *redistest.Server) {
			srv.Kill() // --save "" --appendonly no: it comes back empty
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.StartTest(t)
			p := startPipelineOn(t, srv, 2, "classic")
			before := workload(20, 40, 21)
			if err := p.post(t, before, 25, nil); err != nil {
				t.Fatal(err)
			}
			p.waitProcessed(t, int64(len(before)))

			tc.lose(t, srv)
			// The analyzers write their leases again at once; the results
			// are not written again until events arrive.
			c := srv.Client()
			defer c.Close()
			keys := shard.Keys{Prefix: p.prefix}
			for s := 0; s < 4; s++ {
				if n := c.Exists(context.Background(), keys.Stats(s), keys.DeviceStates(s)).Val(); n != 0 {
					t.Fatalf("shard %d: results left after the loss", s)
				}
			}
			// The services find out by themselves; ingest answers again once
			// its connections are new (an empty restart breaks them).
			poll.True(t, 30*time.Second, "ingest ready", func() bool { return httpStatus(p.ingest.URL("/ready")) == http.StatusOK })

			after := workload(20, 150, 22)
			if err := p.post(t, after, 25, nil); err != nil {
				t.Fatal(err)
			}
			p.checkAgainstReference(t, after)
			p.checkSettled(t)
			p.checkHealthy(t, 4)
		})
	}
}

// checkHealthy asserts that every analyzer is ready and that their
// pulse_shard_lag and pulse_shard_healthy cover every shard once, with lag
// 0, and that the api reports lag and pending 0 (not unknown).
func (p *pipeline) checkHealthy(t *testing.T, shards int) {
	t.Helper()
	poll.True(t, 30*time.Second, "analyzers ready, every shard measured and healthy", func() bool {
		lag, healthy := map[string]float64{}, map[string]float64{}
		for _, a := range p.analyzers {
			if httpStatus(a.URL("/ready")) != http.StatusOK {
				return false
			}
			m, err := promtext.Scrape(context.Background(), http.DefaultClient, a.URL("/prometheus"))
			if err != nil {
				return false
			}
			for _, s := range m {
				switch s.Name {
				case "pulse_shard_lag":
					lag[s.Labels["shard"]] = s.Value
				case "pulse_shard_healthy":
					healthy[s.Labels["shard"]] = s.Value
				}
			}
		}
		for s := 0; s < shards; s++ {
			k := strconv.Itoa(s)
			l, okLag := lag[k]
			h, okHealthy := healthy[k]
			if !okLag || !okHealthy || l != 0 || h != 1 {
				return false
			}
		}
		return true
	})
	var f struct {
		Lag     *int64 `json:"lag"`
		Pending *int64 `json:"pending"`
	}
	if code := getJSON(t, p.api.URL("/analyze"), &f); code != http.StatusOK || f.Lag == nil || *f.Lag != 0 || f.Pending == nil || *f.Pending != 0 {
		t.Errorf("GET /analyze = %d, lag %s pending %s, want 0 and 0", code, ptr(f.Lag), ptr(f.Pending))
	}
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func ptr(v *int64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}
