// Command analyzer applies the metric streams to per-device analytics,
// owning a share of the shards at a time.
package main

import (
	"context"
	"os"

	"github.com/pulse-iot/pulse/internal/cmdmain"
)

func main() {
	cmdmain.Run("analyzer", func(ctx context.Context) error { return run(ctx, os.Getenv, os.Stdout) })
}
