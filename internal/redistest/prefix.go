package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var prefixSeq atomic.Int64

// Prefix returns a KEY_PREFIX no other test of the process uses, so tests
// can share one server, and deletes its keys when the test ends.
func (s *Server) Prefix(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	p := fmt.Sprintf("t%d-%s", prefixSeq.Add(1), name)
	if len(p) > 64 {
		p = p[:64]
	}
	t.Cleanup(func() {
		c := s.Client()
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var keys []string
		iter := c.Scan(ctx, 0, p+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...) // best effort: a killed server has nothing to clean
		}
	})
	return p
}
