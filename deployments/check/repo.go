package check

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RepoRoot is the directory holding go.work and deployments/, found by
// walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.work")) && fileExists(filepath.Join(dir, "deployments", "k8s")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work with deployments/k8s above the working directory")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// InCI reports whether the CI environment variable is set.
func InCI() bool { return os.Getenv("CI") != "" }

// NeedBinary returns the path of an external tool. When it is missing the
// test is skipped, or fails when CI is set (CI must install it).
func NeedBinary(t testing.TB, name, howToInstall string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s not found on PATH but CI is set: %s", name, howToInstall)
	}
	t.Skipf("%s not found on PATH (%s); skipping (set CI=1 to make this a failure)", name, howToInstall)
	return ""
}

// HintRedis tells how to install redis-server, which the tests take from
// the system (Prometheus and Alertmanager are built at the deployed
// releases instead: see Tool).
const HintRedis = "apt-get install -y redis-server"
