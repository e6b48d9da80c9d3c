package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/pulse-iot/pulse/internal/proctest"
	"github.com/pulse-iot/pulse/tools/loadgen"
)

// serveCeilingFlag makes the bench's own executable serve the HTTP ceiling
// instead of benchmarking; not in -h, the harness passes it to itself.
const serveCeilingFlag = "-serve-ceiling"

// ceilingHandler is the least an HTTP server can do with a POST: read its
// body and answer 202. Its rate under the single scenario's load is the
// ceiling of ingest's on this machine.
func ceilingHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusAccepted)
}

// serveCeiling serves ceilingHandler on addr until ctx ends.
func serveCeiling(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(ceilingHandler), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ceiling: %w", err)
	}
	return nil
}

// startCeiling runs serveCeiling in a process of its own (this executable
// again), so that its CPU is read from /proc like the services' and it
// shares no runtime with the load generator.
func startCeiling(ctx context.Context) (*proctest.Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	addr, err := proctest.FreeAddr()
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	p := &proctest.Proc{Name: "ceiling", Argv: []string{exe, serveCeilingFlag, addr}, Addr: addr, ReadyWithin: 10 * time.Second}
	p.Ready = func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// ceiling loads a bare net/http 202 handler exactly as the single scenario
// loads ingest: same client, connections, duration and bodies. Run next to
// single, the ratio of the two says how much of what HTTP alone costs on
// this machine, at this moment, the pipeline achieves.
func (b *bench) ceiling(ctx context.Context) error {
	p, err := b.pool(1, false)
	if err != nil {
		return err
	}
	srv, err := startCeiling(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
			b.logf("ceiling: %v", err)
		}
	}()
	conc := b.o.concurrency
	sc := &LoadResult{
		Name: "ceiling", Kind: "closed", HTTPCeiling: true, BatchSize: 1, Devices: b.o.devices, Concurrency: conc,
		Description: fmt.Sprintf("bare net/http handler answering 202, closed loop, %d connections, single-event POSTs", conc),
	}
	b.logf("%s: %s for %v…", sc.Name, sc.Description, b.o.duration)
	t := loadgen.Target{Client: loadgen.NewClient(conc, requestTimeout), URL: srv.URL("/metrics"), Pool: p}
	maxRequests := int64(b.o.duration.Seconds() * 2e6)
	snap := func() snapshot {
		s := snapshot{cpu: map[string]time.Duration{}}
		if c, err := loadgen.ProcessCPU(srv.Pid()); err == nil {
			s.cpu["ceiling"] = c
		}
		if c, err := loadgen.ProcessCPU(os.Getpid()); err == nil {
			s.cpu["loadgen"] = c
		}
		s.machine, _ = loadgen.MachineCPU()
		s.at = time.Now()
		return s
	}
	before := snap()
	res, err := loadgen.RunClosed(ctx, t, loadgen.Closed{Concurrency: conc, Duration: b.o.duration, MaxRequests: maxRequests})
	if err != nil {
		return err
	}
	after := snap()
	// Nothing to drain: the figures of the pipeline (analyzed, backlog,
	// Redis) stay empty.
	sc.fill(res, before, after, after, nil, 0, true, res.Events)
	b.rep.Scenarios = append(b.rep.Scenarios, sc)
	b.logf("  %s requests/s, p50 %.2f p99 %.2f ms, %d failed; cores: ceiling %.2f loadgen %.2f",
		thousands(sc.RequestsPerSec), sc.Latency.P50Ms, sc.Latency.P99Ms, sc.Failed(), sc.CPU["ceiling"].Cores, sc.CPU["loadgen"].Cores)
	return nil
}
