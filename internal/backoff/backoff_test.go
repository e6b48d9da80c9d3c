package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, 50 * ms}, {1, 50 * ms}, {2, 100 * ms}, {6, 1600 * ms}, {7, 2000 * ms}, {40, 2000 * ms}, {1 << 20, 2000 * ms},
	} {
		if got := Delay(tt.attempt, 50*ms, 2*time.Second); got != tt.want {
			t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestJitterKeepsTheFirstHalf(t *testing.T) {
	for range 1000 {
		if d := Jitter(time.Second); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("Jitter(1s) = %v, want 0.5–1 s", d)
		}
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { Sleep(ctx, time.Hour); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Sleep of an hour did not end with its cancelled context")
	}
}
