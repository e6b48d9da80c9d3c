// Command pulse-nab scores Pulse's alerts on the Numenta Anomaly Benchmark
// (and on ASD as a held-out check) and writes the NAB section of the
// accuracy report:
//
//	go run ./tools/cmd/pulse-nab -nab ../shared/nab -asd ../shared/asd -out docs/ACCURACY.md
package main

import (
	"context"
	"os"

	"github.com/pulse-iot/pulse/internal/cmdmain"
	"github.com/pulse-iot/pulse/tools/realdata"
)

func main() {
	cmdmain.Run("pulse-nab", func(ctx context.Context) error {
		return realdata.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}
