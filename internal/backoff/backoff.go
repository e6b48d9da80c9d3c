// Package backoff spaces out retries: waits that double from a minimum up
// to a maximum after each consecutive failure, and a sleep that ends early
// when its context does.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry attempt (1, 2, …): lo doubling up to hi.
func Delay(attempt int, lo, hi time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := hi
	if attempt-1 < 32 {
		if x := lo << (attempt - 1); x > 0 && x < hi {
			d = x
		}
	}
	return d
}

// Jitter is d with its second half random ("equal jitter"), so that
// clients that failed together do not retry together.
func Jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

// Sleep waits d, or less when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
