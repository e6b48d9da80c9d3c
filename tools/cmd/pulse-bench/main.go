// Command pulse-bench measures the whole pipeline on this machine; see
// package bench for the scenarios and flags:
//
//	go run ./tools/cmd/pulse-bench -h
package main

import (
	"context"
	"os"

	"github.com/pulse-iot/pulse/internal/cmdmain"
	"github.com/pulse-iot/pulse/tools/bench"
)

func main() {
	cmdmain.Run("pulse-bench", func(ctx context.Context) error { return bench.Run(ctx, os.Args[1:], os.Stdout) })
}
