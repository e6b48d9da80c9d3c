package check

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// Every kustomization renders with the kustomize library; every component
// is used by some overlay; when kubectl exists, `kubectl kustomize` renders
// the same objects.
func TestKustomizeRenders(t *testing.T) {
	rs := renderAll(t)
	root := repoRoot(t)
	ks, err := Kustomizations(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{".": false, "base": false, "overlays/no-keda": false}
	for _, r := range rs {
		want[r.K.Rel] = true
		if r.Err != nil {
			t.Errorf("%s: kustomize: %v", r.K.Rel, r.Err)
		}
	}
	for rel, ok := range want {
		if !ok {
			t.Errorf("kustomization %s is missing", rel)
		}
	}
	for _, k := range ks {
		if !k.Component {
			continue
		}
		used := false
		for _, o := range ks {
			for _, u := range o.Uses {
				used = used || u == k.Dir
			}
		}
		if !used {
			t.Errorf("component %s is used by no overlay, so it is never rendered", k.Rel)
		}
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Logf("kubectl not found: compared with the kustomize library only")
		return
	}
	for _, r := range rs {
		if r.Err != nil {
			continue
		}
		out, err := RenderKubectl(kubectl, r.K.Dir)
		if err != nil {
			t.Errorf("%s: %v", r.K.Rel, err)
			continue
		}
		a, err := objectsByID(r.YAML)
		if err != nil {
			t.Fatal(err)
		}
		b, err := objectsByID(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			for id := range a {
				if !reflect.DeepEqual(a[id], b[id]) {
					t.Errorf("%s: kubectl kustomize and the kustomize library differ on %s", r.K.Rel, id)
				}
			}
			for id := range b {
				if _, ok := a[id]; !ok {
					t.Errorf("%s: only kubectl kustomize renders %s", r.K.Rel, id)
				}
			}
		}
	}
}

func objectsByID(stream []byte) (map[string]any, error) {
	docs, err := SplitDocs(stream)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal(d, &m); err != nil {
			return nil, err
		}
		md, _ := m["metadata"].(map[string]any)
		out[fmt.Sprintf("%v %v/%v/%v", m["apiVersion"], m["kind"], md["namespace"], md["name"])] = m
	}
	return out, nil
}

// Every rendered object decodes strictly into its official Go type.
func TestStrictDecode(t *testing.T) {
	for _, r := range renderAll(t) {
		if r.Err != nil {
			continue
		}
		for _, e := range r.Errs {
			t.Errorf("%s: %v", r.K.Rel, e)
		}
		kinds := map[string]int{}
		for _, o := range r.Set.Objects {
			kinds[o.GVK.Kind]++
		}
		t.Logf("%s: %d objects %v", r.K.Rel, len(r.Set.Objects), kinds)
	}
}

// The strict decoder really rejects unknown fields (so a pass means
// something).
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	bad := map[string]string{
		"Deployment": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x, namespace: pulse}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
      - name: x
        image: x:1
        livenessProbe: {httpGet: {path: /health, port: 80}, periodSecond: 5}
`,
		"ScaledObject": `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x, namespace: pulse}
spec:
  scaleTargetRef: {name: x}
  maxReplicas: 4
  triggers: []
`,
		"HPA": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: x, namespace: pulse}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}
  maxReplicas: 3
  targetCPUUtilizationPercentage: 70
`,
		"unknown kind": `apiVersion: example.com/v1
kind: Widget
metadata: {name: x, namespace: pulse}
`,
	}
	for name, doc := range bad {
		if _, errs := DecodeStrict([]byte(doc)); len(errs) == 0 {
			t.Errorf("%s: a manifest with an unknown field/kind decoded without error", name)
		}
	}
}

// Cross-references hold in every rendering.
func TestCrossReferences(t *testing.T) {
	secrets := secretTemplates(t)
	for _, r := range renderAll(t) {
		if r.Err != nil || len(r.Errs) > 0 {
			continue
		}
		rep := CheckSet(r.Set, secrets)
		reportProblems(t, r.K.Rel, rep.Problems)
		if rep.Shards == 0 {
			t.Errorf("%s: SHARDS could not be determined", r.K.Rel)
		}
	}
}

// The default deployment scales the analyzer with KEDA; the no-keda
// overlay with a CPU HPA; never both.
func TestAutoscalerPerTier(t *testing.T) {
	type want struct{ scaledObjects, analyzerHPAs int }
	for rel, w := range map[string]want{".": {1, 0}, "base": {1, 0}, "overlays/no-keda": {0, 1}} {
		r := render(t, rel)
		so := len(r.Set.ScaledObjects())
		hpa := 0
		for _, h := range r.Set.HPAs() {
			if h.Spec.ScaleTargetRef.Name == "analyzer" {
				hpa++
			}
		}
		if so != w.scaledObjects || hpa != w.analyzerHPAs {
			t.Errorf("%s: %d ScaledObjects and %d analyzer HPAs, want %d and %d", rel, so, hpa, w.scaledObjects, w.analyzerHPAs)
		}
	}
}

// Secret templates are never part of a rendering, and the docs tell how to
// create them.
func TestSecretTemplatesNotRendered(t *testing.T) {
	secretTemplates(t)
	for _, r := range renderAll(t) {
		if r.Set == nil {
			continue
		}
		if n := len(r.Set.Secrets()); n > 0 {
			t.Errorf("%s renders %d Secrets: secrets must not be in git", r.K.Rel, n)
		}
	}
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "deployments", "k8s", "secrets", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range secretTemplates(t) {
		for what, text := range map[string][]byte{"secrets/README.md": readme, "docs/DEPLOY.md": doc} {
			if !strings.Contains(string(text), "create secret generic "+name) {
				t.Errorf("%s does not show how to create Secret %s", what, name)
			}
		}
	}
}

// The cross-reference checks catch real mistakes: each mutation of the
// rendered base must be reported.
func TestCrossReferenceChecksCatchMistakes(t *testing.T) {
	base := render(t, "base")
	secrets := secretTemplates(t)
	if ps := CheckSet(base.Set, secrets).Problems; len(ps) > 0 {
		t.Skip("base has problems; TestCrossReferences reports them")
	}
	mutations := []struct {
		name, old, new, want string
	}{
		{"service selector", "  selector:\n    app.kubernetes.io/name: ingest\n", "  selector:\n    app.kubernetes.io/name: ingestt\n", "Service ingest"},
		{"liveness on /ready", "path: /health\n            port: admin\n          periodSeconds: 10", "path: /ready\n            port: admin\n          periodSeconds: 10", "liveness probe path /ready"},
		{"setting a service does not read", "  LEASE_TTL: 5s\n", "  LEASE_TTL: 5s\n  MAX_BATCHES: \"10\"\n", "MAX_BATCHES (from ConfigMap"},
		{"analyzer-only setting shared", "  LOG_FORMAT: json\n", "  LOG_FORMAT: json\n  READ_COUNT: \"100\"\n", "READ_COUNT (from ConfigMap pulse-config"},
		{"maxReplicaCount above SHARDS", "maxReplicaCount: 16", "maxReplicaCount: 32", "exceeds SHARDS"},
		{"Redis AOF off", "appendonly yes", "appendonly no", "appendonly"},
		{"missing Secret key", "key: password\n              name: pulse-redis", "key: passwd\n              name: pulse-redis", "key passwd"},
		{"unknown Secret", "secretName: alertmanager-smtp", "secretName: alertmanager-smtps", "alertmanager-smtps"},
		{"ingress route", "name: api\n            port:\n              name: http\n        path: /anomalies", "name: ingest\n            port:\n              name: http\n        path: /anomalies", "/anomalies goes to"},
		{"second autoscaler for the analyzer", "", "---\n" + analyzerHPA, "several autoscalers"},
		{"invalid setting", "Z_THRESHOLD: \"2.0\"", "Z_THRESHOLD: \"-1\"", "Z_THRESHOLD"},
	}
	for _, m := range mutations {
		y := string(base.YAML)
		if m.old == "" {
			y += m.new
		} else if !strings.Contains(y, m.old) {
			t.Errorf("%s: pattern %q not in the rendered base", m.name, m.old)
			continue
		} else {
			y = strings.Replace(y, m.old, m.new, 1)
		}
		set, errs := DecodeStrict([]byte(y))
		if len(errs) > 0 {
			t.Errorf("%s: %v", m.name, errs)
			continue
		}
		ps := CheckSet(set, secrets).Problems
		found := false
		for _, p := range ps {
			found = found || strings.Contains(p, m.want)
		}
		if !found {
			sort.Strings(ps)
			t.Errorf("%s: not reported (want %q); got %v", m.name, m.want, ps)
		}
	}
}

const analyzerHPA = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: analyzer-cpu
  namespace: pulse
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: analyzer}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
  behavior:
    scaleUp: {stabilizationWindowSeconds: 0}
    scaleDown: {stabilizationWindowSeconds: 300}
`
