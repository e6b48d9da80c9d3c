package chaos

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// DeviceCount is one device's events by outcome, and how many of its
// events the results count. When Redis was wiped, the counts are those of
// the requests after the latest wipe (see tracker).
type DeviceCount struct {
	Device    string
	Acked     int64 // in requests answered 202
	Uncertain int64 // in requests that failed after reaching ingest
	InFlight  int64 // in requests answered 202 but under way across the latest wipe
	Analyzed  int64 // total_processed
}

// Report is what a run did and found.
type Report struct {
	Name      string // the row's: the fsync mode, and whether Redis was wiped
	Fsync     string
	Load      time.Duration
	DrainTime time.Duration
	LogDir    string
	Faults    []Fault

	Requests  int64 // POST /metrics sent
	Sent      int64 // events in them
	Acked     int64 // events answered 202
	Wiped     int64 // of them, answered before or across the latest wipe: lost to it, legitimately
	Uncertain int64 // events whose request failed after reaching ingest
	Refused   int64 // events whose request never reached ingest (dial failed)
	Rejected  int64 // events answered 4xx: must be 0
	AckRate   float64

	Analyzed   int64 // Σ total_processed over the devices
	Lost       int64 // Σ max(0, acked after the latest wipe − analyzed)
	Duplicates int64 // Σ max(0, analyzed − acked − uncertain − in flight across the wipe)
	LossBound  int64 // the most Lost may be: 0 with always
	Devices    int   // devices that sent anything
	Examples   []string

	Pending     int64 // entries pending after the drain
	DeadLetters int64

	Problems []string
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func (r *Report) name() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Fsync
}

// OK reports whether the run found nothing wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// account adds up the devices: acked ≤ analyzed ≤ acked + uncertain +
// in flight must hold for each (the lower bound only with fsync always).
// Events in flight across a wipe were answered 202 but may have been
// stored before it: they count as wiped, and may still be analyzed once.
func (r *Report) account(counts []DeviceCount) {
	for _, c := range counts {
		if c.Acked+c.Uncertain+c.InFlight > 0 || c.Analyzed > 0 {
			r.Devices++
		}
		r.Acked += c.Acked + c.InFlight
		r.Wiped += c.InFlight
		r.Uncertain += c.Uncertain
		r.Analyzed += c.Analyzed
		if c.Analyzed < c.Acked {
			r.Lost += c.Acked - c.Analyzed
			r.example("%s: %d acknowledged, %d analyzed (%d lost)", c.Device, c.Acked, c.Analyzed, c.Acked-c.Analyzed)
		}
		if hi := c.Acked + c.Uncertain + c.InFlight; c.Analyzed > hi {
			r.Duplicates += c.Analyzed - hi
			r.example("%s: %d analyzed, more than %d acknowledged + %d uncertain + %d in flight across a wipe",
				c.Device, c.Analyzed, c.Acked, c.Uncertain, c.InFlight)
		}
	}
}

func (r *Report) example(format string, args ...any) {
	if len(r.Examples) < 10 {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// judge turns the counts into problems.
func (r *Report) judge() {
	if r.Acked == 0 {
		r.problem("no event was acknowledged: the load did not run")
	}
	if r.Duplicates > 0 {
		r.problem("%d events analyzed more than once (e.g. %s)", r.Duplicates, strings.Join(r.Examples, "; "))
	}
	if r.Lost > r.LossBound {
		r.problem("%d acknowledged events lost (after the latest wipe, if any), more than the bound %d of appendfsync %s (e.g. %s)",
			r.Lost, r.LossBound, r.Fsync, strings.Join(r.Examples, "; "))
	}
}

// FaultCount is how many faults of kind k were injected.
func (r *Report) FaultCount(k Kind) int {
	n := 0
	for _, f := range r.Faults {
		if f.Kind == k {
			n++
		}
	}
	return n
}

// WriteTable writes the runs as a Markdown table: faults injected by
// kind, events sent, acknowledged, uncertain, analyzed, lost and
// duplicated, and what was left over.
func WriteTable(w io.Writer, reps []*Report) error {
	var b strings.Builder
	b.WriteString("| run (appendfsync) | faults: analyzer killed / replaced / paused, ingest, redis killed / in rewrite / FLUSHALL / restarted empty | load | sent | acked (202) | wiped | uncertain | refused | analyzed | lost | loss bound | duplicates | pending | dead letters | drained in | result |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range reps {
		result := "ok"
		if !r.OK() {
			result = fmt.Sprintf("**%d problems**", len(r.Problems))
		}
		fmt.Fprintf(&b, "| %s | %d / %d / %d, %d, %d / %d / %d / %d | %v | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1fs | %s |\n",
			r.name(), r.FaultCount(KillAnalyzer), r.FaultCount(ReplaceAnalyzer), r.FaultCount(PauseAnalyzer),
			r.FaultCount(KillIngest), r.FaultCount(KillRedis), r.FaultCount(KillRedisRewriting),
			r.FaultCount(FlushRedis), r.FaultCount(EmptyRedis),
			r.Load, r.Sent, r.Acked, r.Wiped, r.Uncertain, r.Refused, r.Analyzed, r.Lost, r.LossBound, r.Duplicates,
			r.Pending, r.DeadLetters, r.DrainTime.Seconds(), result)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteProblems writes each run's problems, if any.
func WriteProblems(w io.Writer, reps []*Report) error {
	var b strings.Builder
	for _, r := range reps {
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "%s: %s\n", r.name(), p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
