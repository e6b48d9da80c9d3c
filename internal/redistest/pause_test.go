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

	s.PauseWrites(t, 10*time.Second)
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
	select {
	case err := <-done:
		t.Fatalf("SET returned while paused: %v", err)
	default:
	}
	if err := s.Unpause(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("SET after Unpause: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SET still waiting 5s after Unpause")
	}
	if n, err := s.Blocked(ctx, "set"); err != nil || n != 0 {
		t.Errorf("Blocked(set) after Unpause = %d, %v; want 0", n, err)
	}
}
