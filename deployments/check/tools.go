package check

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/semver"
)

// Tool is a Prometheus or Alertmanager command at the version the manifests
// deploy. Distribution packages lag behind (Debian ships promtool 2.42 and
// amtool 0.25, its promtool without the Kubernetes discovery), so the
// checks build the released code from the Go module proxy instead: each
// release has its own module under deployments/check/tools whose go.mod
// names the command in a tool directive, so the command is built with
// exactly the dependency versions of that release.
type Tool struct {
	Name    string // the command: promtool, prometheus, amtool
	Dir     string // its module, under deployments/check/tools
	Module  string // the module of the release
	Image   string // the image that deploys the release
	Version func(moduleVersion string) (string, error)
}

// The tools the checks run.
var (
	Promtool   = Tool{"promtool", "prometheus", "github.com/prometheus/prometheus", "prom/prometheus", prometheusRelease}
	Prometheus = Tool{"prometheus", "prometheus", "github.com/prometheus/prometheus", "prom/prometheus", prometheusRelease}
	Amtool     = Tool{"amtool", "alertmanager", "github.com/prometheus/alertmanager", "prom/alertmanager", sameRelease}
)

// prometheusRelease maps a Prometheus module version to its release: the
// Go module of Prometheus 3.x.y is tagged v0.3xx.y (v0.305.0 is v3.5.0).
func prometheusRelease(v string) (string, error) {
	var minor, patch int
	if _, err := fmt.Sscanf(v, "v0.%d.%d", &minor, &patch); err != nil || minor < 300 || semver.Prerelease(v) != "" || semver.Build(v) != "" {
		return "", fmt.Errorf("module version %s is not a Prometheus 3 release (v0.3xx.y)", v)
	}
	return fmt.Sprintf("v%d.%d.%d", minor/100, minor%100, patch), nil
}

func sameRelease(v string) (string, error) {
	if !semver.IsValid(v) || semver.Prerelease(v) != "" {
		return "", fmt.Errorf("module version %s is not a release", v)
	}
	return v, nil
}

// BuildTool builds the tool with `go tool -n` in its module under root
// (go caches the executable, so only the first build compiles) and returns
// the executable and the release it was built from, read from the
// executable's build information.
func BuildTool(root string, tl Tool) (bin, release string, err error) {
	dir := filepath.Join(root, "deployments", "check", "tools", tl.Dir)
	cmd := exec.Command("go", "tool", "-n", tl.Name)
	cmd.Dir = dir
	// The tools are not in go.work, and build as make deploy-tools built
	// them (no project build tags), so go finds them in its cache.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go tool -n %s in %s: %w\n%s", tl.Name, dir, err, stderr.String())
	}
	bin = strings.TrimSpace(string(out))
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", tl.Name, err)
	}
	// A tool's own module is recorded as the main module.
	for _, d := range append([]*debug.Module{&info.Main}, info.Deps...) {
		if d.Path != tl.Module {
			continue
		}
		if d.Replace != nil {
			return "", "", fmt.Errorf("%s: %s is replaced by %s", tl.Name, d.Path, d.Replace.Path)
		}
		release, err = tl.Version(d.Version)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", tl.Name, err)
		}
		return bin, release, nil
	}
	return "", "", fmt.Errorf("%s was not built from %s", tl.Name, tl.Module)
}
