package chaos

import (
	"context"
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestScheduleCyclesKindsAndLeavesTheEndQuiet(t *testing.T) {
	got := schedule(20*time.Second, 2500*time.Millisecond, 3*time.Second, Kinds)
	want := []Kind{KillAnalyzer, KillRedis, KillIngest, ReplaceAnalyzer, PauseAnalyzer, KillRedisRewriting} // 17.5 s is in the quiet end
	if len(got) != len(want) {
		t.Fatalf("%d faults, want %d: %+v", len(got), len(want), got)
	}
	for i, f := range got {
		if f.Kind != want[i] || f.At != time.Duration(i+1)*2500*time.Millisecond {
			t.Errorf("fault %d = %s at %v, want %s at %v", i, f.Kind, f.At, want[i], time.Duration(i+1)*2500*time.Millisecond)
		}
	}
	if s := schedule(10*time.Second, 0, 0, Kinds); s != nil {
		t.Errorf("no interval: %+v, want none", s)
	}
}

func TestClassify(t *testing.T) {
	statuses := []struct {
		code int
		want outcome
	}{
		{202, acked},
		{400, rejected},
		{401, rejected},
		{413, rejected},
		{415, rejected},
		{429, uncertain},
		{500, uncertain},
		{503, uncertain},
	}
	for _, s := range statuses {
		if got := classifyStatus(s.code); got != s.want {
			t.Errorf("status %d: %v, want %v", s.code, got, s.want)
		}
	}
	dial := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	read := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}}
	if classifyError(dial) != refused || classifyError(read) != uncertain || classifyError(context.DeadlineExceeded) != uncertain {
		t.Error("a failed dial must be refused, anything else uncertain")
	}
}

func TestTrackerCountsAcksOverTime(t *testing.T) {
	start := time.Unix(1000, 0)
	tr := newTracker([]string{"a", "b"}, start)
	m := tr.now()
	tr.record([]int{0, 0, 1}, acked, m, start.Add(50*time.Millisecond), "")
	tr.record([]int{1}, acked, m, start.Add(2*time.Second+10*time.Millisecond), "")
	tr.record([]int{0}, uncertain, m, start.Add(3*time.Second), "")
	tr.record([]int{1, 1}, refused, m, start.Add(3*time.Second), "")
	if got := tr.ackedBetween(start.Add(time.Second), start.Add(3*time.Second)); got != 1 {
		t.Errorf("acked in (1s, 3s] = %d, want 1", got)
	}
	if got := tr.ackedBetween(start, start.Add(3*time.Second)); got != 4 {
		t.Errorf("acked in (0, 3s] = %d, want 4", got)
	}
	if ack, unsure := tr.totals(); ack != 4 || unsure != 1 || tr.refused.Load() != 2 || tr.sent.Load() != 7 {
		t.Errorf("totals %d acked %d uncertain %d refused %d sent", ack, unsure, tr.refused.Load(), tr.sent.Load())
	}
}

// Around a wipe, a request answered before it began is gone with it, one
// sent after it ended must be analyzed, and one under way across it (or
// sent while Redis was being wiped) may be either.
func TestTrackerCountsRelativeToTheLatestWipe(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := newTracker([]string{"a", "b"}, now)
	early := tr.now()
	tr.record([]int{0, 0}, acked, early, now, "") // before the first wipe
	tr.record([]int{1}, uncertain, early, now, "")
	across := tr.now() // sent before the second wipe, answered after it began

	tr.beginWipe()
	tr.endWipe()
	between := tr.now()
	tr.record([]int{0}, acked, between, now, "") // wiped by the second wipe
	tr.beginWipe()
	during := tr.now()
	tr.record([]int{1}, acked, across, now, "")
	tr.endWipe()
	tr.record([]int{1}, acked, during, now, "")
	after := tr.now()
	tr.record([]int{0, 1, 1}, acked, after, now, "")
	tr.record([]int{0}, uncertain, after, now, "")

	counts, ackedBefore, unsureBefore := tr.counts([]int64{1, 3})
	want := []DeviceCount{
		{Device: "a", Acked: 1, Uncertain: 1, Analyzed: 1},
		{Device: "b", Acked: 2, InFlight: 2, Analyzed: 3},
	}
	if !reflect.DeepEqual(counts, want) || ackedBefore != 3 || unsureBefore != 1 {
		t.Errorf("counts %+v, before %d acked %d uncertain; want %+v, 3 and 1", counts, ackedBefore, unsureBefore, want)
	}
	if ack, unsure := tr.totals(); ack != 8 || unsure != 2 {
		t.Errorf("totals %d acked %d uncertain, want 8 and 2", ack, unsure)
	}
}

func TestReportAccountsLossAndDuplicates(t *testing.T) {
	tests := []struct {
		name         string
		fsync        string
		bound        int64
		counts       []DeviceCount
		lost, dup    int64
		wantProblems int
	}{
		{"exact", FsyncAlways, 0, []DeviceCount{{"a", 10, 2, 0, 10}, {"b", 5, 0, 0, 5}, {"c", 0, 3, 0, 3}}, 0, 0, 0},
		{"lost with always", FsyncAlways, 0, []DeviceCount{{"a", 10, 2, 0, 9}}, 1, 0, 1},
		{"duplicate", FsyncAlways, 0, []DeviceCount{{"a", 10, 2, 0, 13}}, 0, 1, 1},
		{"lost within the bound", FsyncEverysec, 5, []DeviceCount{{"a", 10, 0, 0, 7}, {"b", 4, 0, 0, 2}}, 5, 0, 0},
		{"lost beyond the bound", FsyncEverysec, 4, []DeviceCount{{"a", 10, 0, 0, 7}, {"b", 4, 0, 0, 2}}, 5, 0, 1},
		{"in flight across a wipe: analyzed or not", FsyncAlways, 0, []DeviceCount{{"a", 10, 0, 3, 10}, {"b", 10, 1, 3, 14}}, 0, 0, 0},
		{"in flight across a wipe, analyzed twice", FsyncAlways, 0, []DeviceCount{{"a", 10, 0, 3, 14}}, 0, 1, 1},
		{"lost after a wipe", FsyncAlways, 0, []DeviceCount{{"a", 10, 0, 3, 9}}, 1, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Fsync: tt.fsync, LossBound: tt.bound}
			r.account(tt.counts)
			r.judge()
			if r.Lost != tt.lost || r.Duplicates != tt.dup || len(r.Problems) != tt.wantProblems {
				t.Errorf("lost %d duplicates %d problems %q; want %d %d and %d problems", r.Lost, r.Duplicates, r.Problems, tt.lost, tt.dup, tt.wantProblems)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	r := &Report{Fsync: FsyncAlways, Load: 20 * time.Second, Sent: 100, Acked: 90, Uncertain: 5, Refused: 5, Analyzed: 92,
		Faults: []Fault{{Kind: KillRedis}, {Kind: KillAnalyzer}, {Kind: KillRedis}}}
	w := &Report{Name: "always, Redis wiped", Fsync: FsyncAlways, Load: 20 * time.Second, Sent: 100, Acked: 90, Wiped: 40, Uncertain: 5, Refused: 5, Analyzed: 52,
		Faults: []Fault{{Kind: FlushRedis}, {Kind: KillAnalyzer}, {Kind: EmptyRedis}, {Kind: FlushRedis}}}
	var b strings.Builder
	if err := WriteTable(&b, []*Report{r, w}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "| always | 1 / 0 / 0, 0, 2 / 0 / 0 / 0 | 20s | 100 | 90 | 0 | 5 | 5 | 92 | 0 | 0 | 0 |") || !strings.HasSuffix(lines[2], "| ok |") ||
		!strings.HasPrefix(lines[3], "| always, Redis wiped | 1 / 0 / 0, 0, 0 / 0 / 2 / 1 | 20s | 100 | 90 | 40 | 5 | 5 | 52 | 0 | 0 | 0 |") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestProcNotesExitsItDidNotCause runs a real process: killed by us it is
// quiet, exiting by itself it is reported.
func TestProcNotesExitsItDidNotCause(t *testing.T) {
	dir := t.TempDir()
	p := &proc{name: "sleeper", argv: []string{"sleep", "30"}, log: filepath.Join(dir, "s.log"), group: true,
		ready: func(context.Context) error { return nil }}
	if err := p.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !p.running() {
		t.Fatal("not running after start")
	}
	p.kill()
	if p.running() || len(p.exits()) != 0 {
		t.Fatalf("after kill: running %v, exits %q", p.running(), p.exits())
	}
	q := &proc{name: "quitter", argv: []string{"sh", "-c", "exit 3"}, log: filepath.Join(dir, "q.log"),
		ready: func(context.Context) error { return errors.New("never ready") }}
	if err := q.start(context.Background()); err == nil {
		t.Fatal("start of a process that exits at once succeeded")
	}
	if e := q.exits(); len(e) != 1 || !strings.Contains(e[0], "exit status 3") {
		t.Errorf("exits = %q, want one with exit status 3", e)
	}
}
