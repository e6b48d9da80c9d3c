package check

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The deploy guide (docs/DEPLOY.md) works as written: it
// port-forwards Services that exist on ports they expose, applies
// kustomizations that exist, creates every Secret the manifests need,
// enables metrics-server and ingress before applying, and waits for every
// workload.
func TestDeployDoc(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	base := render(t, "base")

	pf := regexp.MustCompile(`kubectl -n pulse port-forward svc/([a-z0-9-]+) (\d+):(\d+)`)
	forwarded := map[string]bool{}
	for _, m := range pf.FindAllStringSubmatch(doc, -1) {
		svc := base.Set.Service("pulse", m[1])
		if svc == nil {
			t.Errorf("docs port-forward svc/%s: no such Service", m[1])
			continue
		}
		port, _ := strconv.Atoi(m[3])
		ok := false
		for _, p := range svc.Spec.Ports {
			ok = ok || int(p.Port) == port
		}
		if !ok {
			t.Errorf("docs port-forward svc/%s %s:%s: the Service has no port %s", m[1], m[2], m[3], m[3])
		}
		forwarded[m[1]] = true
	}
	for _, want := range []string{"ingest", "api", "prometheus", "alertmanager", "grafana"} {
		if !forwarded[want] {
			t.Errorf("docs do not port-forward svc/%s", want)
		}
	}

	for _, m := range regexp.MustCompile(`kubectl apply -k (\S+)`).FindAllStringSubmatch(doc, -1) {
		if !fileExists(filepath.Join(root, m[1], "kustomization.yaml")) {
			t.Errorf("docs apply -k %s: no kustomization there", m[1])
		}
	}
	for _, d := range base.Set.Deployments() {
		if !strings.Contains(doc, d.Name) {
			t.Errorf("docs never wait for deployment %s", d.Name)
		}
	}
	order := []string{"addons enable metrics-server", "addons enable ingress", "helm install keda", "create secret generic pulse-redis", "kubectl apply -k deployments/k8s"}
	last := -1
	for _, step := range order {
		i := strings.Index(doc, step)
		if i < 0 {
			t.Errorf("docs lack %q", step)
			continue
		}
		if i < last {
			t.Errorf("docs: %q comes too late (metrics-server and ingress, KEDA and the Secrets go before apply)", step)
		}
		last = i
	}
	for _, img := range []string{"pulse-ingest", "pulse-analyzer", "pulse-api"} {
		for _, im := range base.Set.Deployments() {
			for _, c := range im.Spec.Template.Spec.Containers {
				if strings.HasPrefix(c.Image, img+":") && !strings.Contains(doc, c.Image) && !strings.Contains(doc, "pulse-$s:"+strings.TrimPrefix(c.Image, img+":")) {
					t.Errorf("docs do not build or load image %s", c.Image)
				}
			}
		}
	}
}
