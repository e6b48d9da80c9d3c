// Command api serves the analyzers' results to dashboards.
package main

import (
	"context"
	"os"

	"github.com/pulse-iot/pulse/internal/cmdmain"
)

func main() {
	cmdmain.Run("api", func(ctx context.Context) error { return run(ctx, os.Getenv, os.Stdout) })
}
