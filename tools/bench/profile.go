package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulse-iot/pulse/internal/backoff"
)

// profiler captures CPU profiles of the processes during a load: with
// -pprof from each service's /debug/pprof/profile (when it serves one), with
// -perf by Linux perf on each process we started (Redis included). The
// reports (`go tool pprof -top`, `perf report`) go to a text file beside
// the JSON report.
type profiler struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	dir  string
	outs []string // sections, in completion order
	file string
}

// profileSeconds is the length of each profile; it starts 2 s into a load.
const profileSeconds = 10

func (b *bench) startProfiles(ctx context.Context, scenario string) *profiler {
	dir, err := os.MkdirTemp("", "pulse-bench-prof-")
	if err != nil {
		b.logf("  profiles: %v", err)
		return nil
	}
	p := &profiler{dir: dir}
	if b.o.out != "" {
		p.file = strings.TrimSuffix(b.o.out, ".json") + "-" + scenario + ".profile.txt"
	}
	secs := min(profileSeconds, int(b.o.duration.Seconds())-4)
	delay := 2 * time.Second
	if b.o.pprof {
		targets := b.sys.admins
		if b.sys.own {
			targets = b.sys.procs
		}
		for _, pr := range targets {
			if pr.admin == "" {
				continue // redis
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.add(b.pprof(ctx, delay, secs, pr.name, pr.admin, dir))
			}()
		}
	}
	if b.o.perf {
		for _, pr := range b.sys.procs {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.add(perfRecord(ctx, delay, secs, pr, dir))
			}()
		}
	}
	return p
}

func (p *profiler) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outs = append(p.outs, s)
}

// wait returns the file the profiles were written to ("" if none).
func (p *profiler) wait() []string {
	if p == nil {
		return nil
	}
	p.wg.Wait()
	defer os.RemoveAll(p.dir)
	if p.file == "" || len(p.outs) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.file), 0o755); err != nil {
		return nil
	}
	if err := os.WriteFile(p.file, []byte(strings.Join(p.outs, "\n")), 0o644); err != nil {
		return nil
	}
	return []string{p.file}
}

// pprof fetches a CPU profile from a service's /debug/pprof/profile and
// returns `go tool pprof -top` of it.
func (b *bench) pprof(ctx context.Context, delay time.Duration, secs int, name, base, dir string) string {
	head := fmt.Sprintf("==== pprof %s (%ds CPU profile from %s/debug/pprof/profile)\n", name, secs, base)
	backoff.Sleep(ctx, delay)
	if ctx.Err() != nil {
		return head + "cancelled\n"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+20)*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return head + err.Error() + "\n"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return head + "not served: " + resp.Status + "\n"
	}
	file := filepath.Join(dir, name+".pprof")
	f, err := os.Create(file)
	if err != nil {
		return head + err.Error() + "\n"
	}
	_, err = io.Copy(f, resp.Body)
	f.Close()
	if err != nil {
		return head + err.Error() + "\n"
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", file).CombinedOutput()
	if err != nil {
		return head + fmt.Sprintf("go tool pprof: %v\n%s", err, out)
	}
	cum, _ := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=40", file).CombinedOutput()
	return head + string(out) + "\n-- by cumulative time\n" + string(cum)
}

// perfRecord samples a process with Linux perf (cpu-clock, call graphs by
// frame pointers, which Go keeps) and returns the report: functions by
// their own time, then by their time including callees.
func perfRecord(ctx context.Context, delay time.Duration, secs int, pr proc, dir string) string {
	head := fmt.Sprintf("==== perf %s (pid %d, %ds, cpu-clock at 499 Hz)\n", pr.name, pr.pid, secs)
	bin, err := exec.LookPath("perf")
	if err != nil {
		return head + "perf not found (apt-get install linux-perf)\n"
	}
	backoff.Sleep(ctx, delay)
	if ctx.Err() != nil {
		return head + "cancelled\n"
	}
	data := filepath.Join(dir, pr.name+".perf.data")
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	rec := exec.CommandContext(cctx, bin, "record", "-e", "cpu-clock", "-F", "499", "-g", "-p", strconv.Itoa(pr.pid),
		"-o", data, "--", "sleep", strconv.Itoa(secs))
	if out, err := rec.CombinedOutput(); err != nil {
		return head + fmt.Sprintf("perf record: %v\n%s", err, out)
	}
	report := func(args ...string) string {
		a := append([]string{"report", "-i", data, "--stdio", "-g", "none"}, args...)
		out, err := exec.CommandContext(cctx, bin, a...).Output()
		if err != nil {
			return fmt.Sprintf("perf report: %v\n", err)
		}
		return keepPerfRows(out, 45)
	}
	self := head + "-- self\n" + report("--no-children", "-F", "overhead,sym", "--percent-limit", "0.5")
	if pr.name == "redis" {
		// Debian's redis-server has no frame pointers: its call graphs are
		// noise. INFO commandstats in the report says where its time goes.
		return self
	}
	return self + "-- including callees (total, self)\n" + report("--children", "--sort", "sym", "--percent-limit", "2")
}

// emptyColumns matches the blank ("-") columns perf appends to Go symbols.
var emptyColumns = regexp.MustCompile(`(\s+-)*\s*$`)

// keepPerfRows drops perf report's comment lines and keeps n rows.
func keepPerfRows(out []byte, n int) string {
	var b bytes.Buffer
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if n == 0 {
			break
		}
		n--
		b.WriteString(emptyColumns.ReplaceAllString(line, "") + "\n")
	}
	return b.String()
}
