// Package cmdmain is what the main functions of Pulse's commands share:
// SIGINT and SIGTERM end the context the command runs under, a failure is
// printed once and exits with status 1, and flags are parsed the same way.
package cmdmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Run runs the command name until run returns; its context ends on SIGINT
// or SIGTERM. An error is printed as "name: err" on stderr and exits 1.
func Run(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// ParseFlags parses args into fs and refuses positional arguments. It
// returns false when the command should stop: with the error, or with nil
// after -h (fs has printed the usage).
func ParseFlags(fs *flag.FlagSet, args []string) (bool, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return true, nil
}
