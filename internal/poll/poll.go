// Package poll waits, in tests, for a condition that another goroutine or
// process brings about.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 50 * time.Millisecond

// Until calls cond every Interval until it holds, and fails t when it has
// not held within timeout, with what and the state cond last described.
func Until(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, state)
		}
		time.Sleep(Interval)
	}
}

// True is Until for a condition with no state worth showing.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(Interval)
	}
}
