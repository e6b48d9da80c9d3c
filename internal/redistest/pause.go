package redistest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// PauseWrites makes the server hold every write command (CLIENT PAUSE
// WRITE) for d or until Unpause, as a Redis too slow to answer would; the
// pause ends with t at the latest.
func (s *Server) PauseWrites(t testing.TB, d time.Duration) {
	t.Helper()
	c := s.Client()
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "PAUSE", d.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Unpause() })
}

// Unpause lets the commands PauseWrites holds run.
func (s *Server) Unpause() error {
	c := s.Client()
	defer c.Close()
	return c.Do(context.Background(), "CLIENT", "UNPAUSE").Err()
}

// Blocked returns how many clients wait in cmd (e.g. "xadd"), held by a
// pause or a blocking command: flag b in CLIENT LIST.
func (s *Server) Blocked(ctx context.Context, cmd string) (int, error) {
	c := s.Client()
	defer c.Close()
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "cmd="+cmd+" ") && strings.Contains(line, "flags=b") {
			n++
		}
	}
	return n, nil
}
