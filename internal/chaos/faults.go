package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the driver injects. Each kills a process with SIGKILL (no
// chance to finish anything) and starts it again after a short pause.
const (
	// KillAnalyzer kills an analyzer and starts it again under the same
	// CONSUMER_NAME, as a StatefulSet pod restarts: it finds its own
	// pending entries.
	KillAnalyzer Kind = "analyzer"
	// ReplaceAnalyzer kills an analyzer and starts a new one under a new
	// name, as a Deployment replaces a pod: the dead consumer's pending
	// entries must be claimed by whoever owns the shard next.
	ReplaceAnalyzer Kind = "analyzer-new"
	// KillIngest kills an ingest and starts it again on the same address.
	KillIngest Kind = "ingest"
	// KillRedis kills redis-server and starts it again on the same port
	// with the same data directory: it replays its AOF.
	KillRedis Kind = "redis"
	// KillRedisRewriting starts an AOF rewrite (BGREWRITEAOF) and kills
	// redis-server and its rewriting child a moment later: the restart
	// must load the AOF as it was before the rewrite (Redis 7 switches
	// its multi-part AOF manifest only once a rewrite is complete).
	KillRedisRewriting Kind = "redis-rewrite"
	// PauseAnalyzer stops an analyzer (SIGSTOP) for longer than its lease
	// and lets it go on (SIGCONT), as a long GC pause or a frozen VM would:
	// its shards move meanwhile, and when it wakes up with a batch in hand
	// the fencing must refuse its writes.
	PauseAnalyzer Kind = "analyzer-pause"
)

// Kinds are every kind of fault, in the order a schedule cycles through.
var Kinds = []Kind{KillAnalyzer, KillRedis, KillIngest, ReplaceAnalyzer, PauseAnalyzer, KillRedisRewriting}

// pauseFor is how long PauseAnalyzer stops an analyzer: past its lease
// (LEASE_TTL=1s) and past the time the others take to claim its shards.
const pauseFor = 3 * time.Second

// Fault is one fault injected.
type Fault struct {
	Kind      Kind
	Target    string        // the process killed
	At        time.Duration // since the load started, when it was killed
	KilledAt  time.Time     // after the process had exited
	RestartAt time.Time     // when its replacement was launched
	Down      time.Duration // from the kill until the replacement answered
	Err       error         // the restart failed
}

// schedule returns when each fault happens (since the load starts) and of
// which kind: every `every`, cycling through kinds, none in the last
// `quiet` of the load so that the pipeline is seen working after the
// last fault.
func schedule(load, every, quiet time.Duration, kinds []Kind) []Fault {
	var out []Fault
	if every <= 0 || len(kinds) == 0 {
		return nil
	}
	for at, i := every, 0; at <= load-quiet; at, i = at+every, i+1 {
		out = append(out, Fault{Kind: kinds[i%len(kinds)], At: at})
	}
	return out
}

// injector runs a schedule against a pipeline.
type injector struct {
	p       *pipeline
	rng     *rand.Rand
	minDown time.Duration
	maxDown time.Duration
	logf    func(string, ...any)
}

// run injects the faults at their times (relative to start), one at a
// time; a fault whose time has passed while the previous one was still
// restarting waits for it. It returns the faults as injected.
func (in *injector) run(ctx context.Context, start time.Time, faults []Fault) []Fault {
	var done []Fault
	for _, f := range faults {
		sleep(ctx, time.Until(start.Add(f.At)))
		if ctx.Err() != nil {
			break
		}
		f = in.inject(ctx, f)
		f.At = f.KilledAt.Sub(start)
		if f.Err != nil {
			in.logf("fault %-12s %-12s at %6.1fs: restart failed: %v", f.Kind, f.Target, f.At.Seconds(), f.Err)
		} else {
			in.logf("fault %-12s %-12s at %6.1fs: back after %v", f.Kind, f.Target, f.At.Seconds(), f.Down.Round(time.Millisecond))
		}
		done = append(done, f)
		if f.Err != nil {
			break // the pipeline is broken; the verification says how
		}
	}
	return done
}

func (in *injector) inject(ctx context.Context, f Fault) Fault {
	pause := in.minDown
	if in.maxDown > in.minDown {
		pause += time.Duration(in.rng.Int64N(int64(in.maxDown - in.minDown)))
	}
	var victim *proc
	var replacement func() (*proc, error)
	switch f.Kind {
	case KillAnalyzer:
		i := in.rng.IntN(len(in.p.analyzers))
		victim = in.p.analyzers[i]
		replacement = func() (*proc, error) { return victim, nil }
	case ReplaceAnalyzer:
		i := in.rng.IntN(len(in.p.analyzers))
		victim = in.p.analyzers[i]
		replacement = func() (*proc, error) {
			a, err := in.p.newAnalyzer()
			if err == nil {
				in.p.setAnalyzer(i, a)
			}
			return a, err
		}
	case KillIngest:
		victim = in.p.ingests[in.rng.IntN(len(in.p.ingests))]
		replacement = func() (*proc, error) { return victim, nil }
	case KillRedis:
		victim = in.p.redis
		replacement = func() (*proc, error) { return victim, nil }
	case KillRedisRewriting:
		victim = in.p.redis
		replacement = func() (*proc, error) { return victim, nil }
		if err := in.p.rewriteAOF(ctx); err != nil {
			in.logf("BGREWRITEAOF: %v", err)
		}
		sleep(ctx, time.Duration(in.rng.Int64N(int64(300*time.Millisecond))))
	case PauseAnalyzer:
		victim = in.p.analyzers[in.rng.IntN(len(in.p.analyzers))]
		f.Target = victim.name
		f.KilledAt = time.Now()
		f.Err = victim.pause(pauseFor)
		f.RestartAt = time.Now()
		f.Down = time.Since(f.KilledAt)
		return f
	default:
		f.Err = fmt.Errorf("unknown fault kind %q", f.Kind)
		return f
	}
	f.Target = victim.name
	victim.kill()
	f.KilledAt = time.Now()
	sleep(ctx, pause)
	next, err := replacement()
	f.RestartAt = time.Now()
	if err == nil {
		err = next.start(context.WithoutCancel(ctx))
	}
	f.Down = time.Since(f.KilledAt)
	f.Err = err
	return f
}
