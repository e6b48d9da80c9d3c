package poll

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs wait on a fatalRecorder and returns what it failed with
// ("" when it returned).
func failure(wait func(t testing.TB)) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait(r)
	}()
	<-done
	return r.msg
}

func until(timeout time.Duration, cond func() (bool, string)) string {
	return failure(func(t testing.TB) { Until(t, timeout, "the thing", cond) })
}

func TestUntil(t *testing.T) {
	t.Run("returns once the condition holds", func(t *testing.T) {
		calls := 0
		msg := until(5*time.Second, func() (bool, string) {
			calls++
			return calls == 3, fmt.Sprintf("call %d", calls)
		})
		if msg != "" || calls != 3 {
			t.Errorf("failed with %q after %d calls, want success on the 3rd", msg, calls)
		}
	})
	t.Run("fails with the last state after the timeout", func(t *testing.T) {
		calls := 0
		start := time.Now()
		msg := until(3*Interval, func() (bool, string) {
			calls++
			return false, fmt.Sprintf("call %d", calls)
		})
		if took := time.Since(start); took < 3*Interval {
			t.Errorf("gave up after %v, before the timeout", took)
		}
		want := fmt.Sprintf("the thing: not within %v; last: call %d", 3*Interval, calls)
		if msg != want || calls < 2 {
			t.Errorf("failed with %q after %d calls, want %q", msg, calls, want)
		}
	})
}

func TestTrue(t *testing.T) {
	calls := 0
	second := func() bool {
		calls++
		return calls == 2
	}
	if msg := failure(func(t testing.TB) { True(t, 5*time.Second, "the thing", second) }); msg != "" || calls != 2 {
		t.Errorf("failed with %q after %d calls, want success on the 2nd", msg, calls)
	}
	msg := failure(func(t testing.TB) { True(t, 2*Interval, "the thing", func() bool { return false }) })
	if want := fmt.Sprintf("the thing: not within %v", 2*Interval); msg != want {
		t.Errorf("failed with %q, want %q", msg, want)
	}
}
