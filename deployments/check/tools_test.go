package check

import (
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type builtTool struct {
	bin, release string
	err          error
}

var (
	toolsMu sync.Mutex
	built   = map[string]builtTool{}
)

// deployedTool returns the executable of tl at the deployed release, built
// once per test binary.
func deployedTool(t testing.TB, tl Tool) (bin, release string) {
	t.Helper()
	root := repoRoot(t)
	toolsMu.Lock()
	b, ok := built[tl.Name]
	if !ok {
		b.bin, b.release, b.err = BuildTool(root, tl)
		built[tl.Name] = b
	}
	toolsMu.Unlock()
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin, b.release
}

func TestPrometheusRelease(t *testing.T) {
	tests := []struct {
		module, want string
		ok           bool
	}{
		{"v0.305.0", "v3.5.0", true},
		{"v0.305.1", "v3.5.1", true},
		{"v0.310.2", "v3.10.2", true},
		{"v0.300.0", "v3.0.0", true},
		{"v0.55.1", "", false},       // Prometheus 2.55 has no such tag scheme
		{"v0.312.0-rc.0", "", false}, // release candidates deploy no image of ours
		{"v2.53.0+incompatible", "", false},
	}
	for _, tc := range tests {
		got, err := prometheusRelease(tc.module)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("prometheusRelease(%s) = %q, %v; want %q, ok %v", tc.module, got, err, tc.want, tc.ok)
		}
	}
}

// imageTag splits an image reference into repository and tag (a digest,
// if any, dropped).
func imageTag(image string) (repo, tag string) {
	image, _, _ = strings.Cut(image, "@")
	i := strings.LastIndexByte(image, ':')
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, ""
	}
	return image[:i], image[i+1:]
}

// The checks run the releases the manifests deploy: every Prometheus and
// Alertmanager image, in every kustomization and in the compose file, is
// the release its tool was built from.
func TestToolsAreDeployedReleases(t *testing.T) {
	images := map[string][]string{} // image -> where it is used
	for _, r := range renderAll(t) {
		if r.Set == nil {
			continue
		}
		for _, w := range r.Set.Workloads() {
			spec := w.Template.Spec
			for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
				images[c.Image] = append(images[c.Image], r.K.Rel+" "+w.ID())
			}
		}
	}
	for name, s := range composeProject(t).Services {
		images[s.Image] = append(images[s.Image], "compose "+name)
	}
	for _, tl := range []Tool{Promtool, Prometheus, Amtool} {
		_, release := deployedTool(t, tl)
		deployed := 0
		for image, where := range images {
			repo, tag := imageTag(image)
			if repo != tl.Image && !strings.HasSuffix(repo, "/"+tl.Image) {
				continue
			}
			deployed++
			if tag != release {
				t.Errorf("%s deploys %s, the checks run %s %s (deployments/check/tools/%s/go.mod)", strings.Join(where, ", "), image, tl.Name, release, tl.Dir)
			}
		}
		if deployed == 0 {
			t.Errorf("no %s image is deployed: %s %s checks nothing deployed", tl.Image, tl.Name, release)
		}
		t.Logf("%s %s", tl.Name, release)
	}
}
