package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/stream"
)

// publisher appends events to the streams and returns once all of them
// are stored, or with an error if any may not be.
type publisher interface {
	Publish(ctx context.Context, events []stream.Event) error
}

const (
	// publishWriters pipelines run at once: while one waits on Redis, the
	// next collects the requests that arrive meanwhile.
	publishWriters = 2
	// maxPipeline bounds the events of one pipeline; larger requests
	// still go in one piece.
	maxPipeline = 4096
)

// errPublisherClosed is returned by Publish after Close.
var errPublisherClosed = errors.New("publisher closed")

// redisPublisher groups the XADDs of concurrent requests into pipelines
// (group commit): one Redis round trip serves many requests, and each
// request is answered when its own entries are written.
type redisPublisher struct {
	rdb     redis.Cmdable
	keys    shard.Keys
	shards  int
	timeout time.Duration
	m       *ingestMetrics

	queue   chan *publishJob
	stop    chan struct{}
	closing sync.Once
	wg      sync.WaitGroup
}

var _ publisher = (*redisPublisher)(nil)

type publishJob struct {
	events []stream.Event
	done   chan error
}

func newRedisPublisher(rdb redis.Cmdable, keys shard.Keys, shards int, timeout time.Duration, m *ingestMetrics) *redisPublisher {
	p := &redisPublisher{
		rdb: rdb, keys: keys, shards: shards, timeout: timeout, m: m,
		queue: make(chan *publishJob, 1024),
		stop:  make(chan struct{}),
	}
	p.wg.Add(publishWriters)
	for i := 0; i < publishWriters; i++ {
		go p.write()
	}
	return p
}

// Publish implements publisher.
func (p *redisPublisher) Publish(ctx context.Context, events []stream.Event) error {
	j := &publishJob{events: events, done: make(chan error, 1)}
	select {
	case p.queue <- j:
	case <-p.stop:
		return errPublisherClosed
	case <-ctx.Done():
		return fmt.Errorf("queue for redis: %w", ctx.Err())
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		// The pipeline may still write the events: the client is told
		// 503 and may retry, which at worst stores them twice.
		return fmt.Errorf("wait for redis: %w", ctx.Err())
	}
}

// Close stops the writers after they have written every queued job. Call
// it only when no Publish is running.
func (p *redisPublisher) Close() {
	p.closing.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *redisPublisher) write() {
	defer p.wg.Done()
	batch := make([]*publishJob, 0, 64)
	for {
		var first *publishJob
		select {
		case first = <-p.queue:
		case <-p.stop:
			// Drain what was queued before Close.
			select {
			case first = <-p.queue:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
		n := len(first.events)
	collect:
		for n < maxPipeline {
			select {
			case j := <-p.queue:
				batch = append(batch, j)
				n += len(j.events)
			default:
				break collect
			}
		}
		p.flush(batch, n)
	}
}

func (p *redisPublisher) flush(batch []*publishJob, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, 0, n)
	for _, j := range batch {
		for _, e := range j.events {
			cmds = append(cmds, pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: p.keys.Stream(shard.For(e.DeviceID, p.shards)),
				Values: e.Values(),
			}))
		}
	}
	_, execErr := pipe.Exec(ctx)
	p.m.pipelineSize.Observe(float64(n))
	i := 0
	for _, j := range batch {
		var err error
		for range j.events {
			if cerr := cmds[i].Err(); cerr != nil && err == nil {
				err = fmt.Errorf("xadd %s: %w", cmds[i].Args()[1], cerr)
			}
			i++
		}
		if err == nil && execErr != nil && len(j.events) > 0 {
			err = fmt.Errorf("redis pipeline: %w", execErr)
		}
		j.done <- err
	}
}
