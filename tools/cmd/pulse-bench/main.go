// Command pulse-bench measures the whole pipeline on this machine; see
// package bench for the scenarios and flags:
//
//	go run ./tools/cmd/pulse-bench -h
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulse-iot/pulse/tools/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pulse-bench:", err)
		os.Exit(1)
	}
}
