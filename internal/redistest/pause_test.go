package redistest

import (
	"context"
	"testing"
	"time"
)

// A write waits while the server is paused and runs once it resumes;
// Blocked counts it meanwhile.
func TestPauseWrites(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	c := s.Client()
	defer c.Close()

	// Paused far longer than the client waits for an answer (its read
	// timeout, 3 s): only Unpause lets the SET succeed.
	s.PauseWrites(t, time.Minute)
	done := make(chan error, 1)
	go func() { done <- c.Set(ctx, "k", "v", 0).Err() }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, err := s.Blocked(ctx, "set")
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Blocked(set) = %d after 5s, want 1", n)
		}
	}
	if len(done) > 0 {
		t.Fatalf("SET returned while paused: %v", <-done)
	}
	if err := s.Unpause(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("SET after Unpause: %v", err)
	}
	if n, err := s.Blocked(ctx, "set"); err != nil || n != 0 {
		t.Errorf("Blocked(set) after Unpause = %d, %v; want 0", n, err)
	}
}
