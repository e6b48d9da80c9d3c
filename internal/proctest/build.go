package proctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Services are the Pulse binaries, each the module of that name at the
// repository's root.
func Services() []string { return []string{"ingest", "analyzer", "api"} }

// RepoRoot returns the repository's root: the nearest folder holding a
// go.work at or above the working directory.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.work at or above %s: run from the Pulse repository", wd)
		}
	}
}

// BuildOptions say where and how Build builds.
type BuildOptions struct {
	Root  string   // the repository: each service is the module Root/<name>
	Dir   string   // where the binaries go, each named as its service
	Flags []string // go build flags, e.g. -trimpath
	// Env is added to go's environment, e.g. CGO_ENABLED=0, or GOWORK
	// naming a go.work (another checkout's) or off (each module alone).
	// Without GOWORK, go uses Root's go.work.
	Env []string
}

// Build runs go build in the module folder of each named service (all of
// Services when none are named) and returns each binary's path by name.
// A failed build's error holds go's output.
func Build(ctx context.Context, o BuildOptions, names ...string) (map[string]string, error) {
	if len(names) == 0 {
		names = Services()
	}
	if o.Root == "" || o.Dir == "" {
		return nil, errors.New("build: Root and Dir are required")
	}
	bins := map[string]string{}
	for _, name := range names {
		bin := filepath.Join(o.Dir, name)
		args := append(append([]string{"build"}, o.Flags...), "-o", bin, ".")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = filepath.Join(o.Root, name)
		cmd.Env = append(os.Environ(), o.Env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s in %s: %w\n%s", name, cmd.Dir, err, out.String())
		}
		bins[name] = bin
	}
	return bins, nil
}
