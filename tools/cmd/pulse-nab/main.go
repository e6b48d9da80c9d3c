// Command pulse-nab scores Pulse's alerts on the Numenta Anomaly Benchmark
// (and on ASD as a held-out check) and writes the NAB section of the
// accuracy report:
//
//	go run ./tools/cmd/pulse-nab -nab ../shared/nab -asd ../shared/asd -out docs/ACCURACY.md
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/pulse-iot/pulse/tools/realdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := realdata.Main(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pulse-nab:", err)
		os.Exit(1)
	}
}
