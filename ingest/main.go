// Command ingest accepts metrics over HTTP and appends them to Redis streams.
package main

import (
	"context"
	"os"

	"github.com/pulse-iot/pulse/internal/cmdmain"
)

func main() {
	cmdmain.Run("ingest", func(ctx context.Context) error { return run(ctx, os.Getenv, os.Stdout) })
}
