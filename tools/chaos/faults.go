package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
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
	// FlushRedis sends FLUSHALL: Redis loses every key at once (an
	// operator's mistake, a script gone wrong) while the services run.
	FlushRedis Kind = "redis-flushall"
	// EmptyRedis kills redis-server, deletes its data (AOF and RDB) and
	// starts it again on the same port: Redis restarted without
	// persistence, or a replica promoted empty.
	EmptyRedis Kind = "redis-empty"
)

// Kinds are the faults that lose nothing acknowledged (with appendfsync
// always), in the order a schedule cycles through.
var Kinds = []Kind{KillAnalyzer, KillRedis, KillIngest, ReplaceAnalyzer, PauseAnalyzer, KillRedisRewriting}

// WipeKinds are the faults of a run where Redis loses everything now and
// then, mixed with the others: what was stored before a wipe is gone, and
// what is acknowledged after it must be analyzed (see tracker).
var WipeKinds = []Kind{FlushRedis, KillAnalyzer, EmptyRedis, KillIngest, PauseAnalyzer, ReplaceAnalyzer, KillRedis}

// wipes reports whether k makes Redis lose everything.
func (k Kind) wipes() bool { return k == FlushRedis || k == EmptyRedis }

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
	Err       error         // the restart failed, or the shards did not recover from a wipe

	// For a wipe: from when Redis served again until every shard had
	// analyzed events again, by itself (no other fault is injected
	// meanwhile, so no analyzer restart can hide a stuck shard); -1 when
	// the load ended first.
	Recovered time.Duration
}

// wipeRecovery bounds how long the shards may take to analyze again after
// a wipe: generous, it is not a speed test; a shard stuck for good (a
// consumer group never created again) fails it.
const wipeRecovery = 60 * time.Second

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
	tr      *tracker
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
			in.logf("fault %-12s %-12s at %6.1fs: failed: %v", f.Kind, f.Target, f.At.Seconds(), f.Err)
		} else if f.Kind.wipes() && f.Recovered < 0 {
			in.logf("fault %-12s %-12s at %6.1fs: back after %v; the load ended before every shard analyzed again",
				f.Kind, f.Target, f.At.Seconds(), f.Down.Round(time.Millisecond))
		} else if f.Kind.wipes() {
			in.logf("fault %-12s %-12s at %6.1fs: back after %v, every shard analyzing again %v later",
				f.Kind, f.Target, f.At.Seconds(), f.Down.Round(time.Millisecond), f.Recovered.Round(time.Millisecond))
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
	case FlushRedis:
		f.Target = in.p.redis.name
		in.tr.beginWipe()
		f.KilledAt = time.Now()
		f.Err = in.p.flushAll(ctx)
		in.tr.endWipe()
		f.RestartAt = time.Now()
		f.Down = time.Since(f.KilledAt)
		if f.Err == nil {
			f.Recovered, f.Err = in.p.waitAnalyzing(ctx, wipeRecovery)
		}
		return f
	case EmptyRedis:
		victim = in.p.redis
		in.tr.beginWipe() // ended below, once it serves again
		replacement = func() (*proc, error) {
			// Its data goes while it is down: it starts empty.
			if err := os.RemoveAll(in.p.redisDir); err != nil {
				return nil, err
			}
			return victim, os.MkdirAll(in.p.redisDir, 0o755)
		}
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
	if f.Kind == EmptyRedis {
		in.tr.endWipe()
		if f.Err == nil {
			f.Recovered, f.Err = in.p.waitAnalyzing(ctx, wipeRecovery)
		}
	}
	return f
}
