package proctest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/logcapture"
)

// RunRejects checks, in a parallel subtest per invalid setting (NAME=value),
// that run refuses to start with env(t) changed by that one setting: it
// must return an error naming the variable and its value (NAME="value",
// quoted as config names the value it refuses, so that another check's
// message that merely mentions NAME=value does not pass). Were the value
// accepted, run would serve until the 3 s timeout and return nil.
func RunRejects(t *testing.T, run RunFunc, env func(t *testing.T) map[string]string, invalid ...string) {
	t.Helper()
	for _, setting := range invalid {
		t.Run(setting, func(t *testing.T) {
			t.Parallel()
			name, value, ok := strings.Cut(setting, "=")
			if !ok {
				t.Fatalf("setting %q: want NAME=value", setting)
			}
			e := env(t)
			e[name] = value
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := run(ctx, func(k string) string { return e[k] }, &logcapture.Buffer{})
			if want := fmt.Sprintf("%s=%q", name, value); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("run returned %v, want an error naming %s", err, want)
			}
		})
	}
}
