package check

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

type rendered struct {
	K    Kustomization
	YAML []byte
	Set  *Set
	Err  error
	Errs []error
}

var (
	renderOnce sync.Once
	renders    []rendered
	renderErr  error
)

// renderAll builds every non-component kustomization once per test binary.
func renderAll(t testing.TB) []rendered {
	t.Helper()
	renderOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			renderErr = err
			return
		}
		ks, err := Kustomizations(root)
		if err != nil {
			renderErr = err
			return
		}
		for _, k := range ks {
			if k.Component {
				continue
			}
			r := rendered{K: k}
			r.YAML, r.Err = RenderKrusty(k.Dir)
			if r.Err == nil {
				r.Set, r.Errs = DecodeStrict(r.YAML)
			}
			renders = append(renders, r)
		}
	})
	if renderErr != nil {
		t.Fatal(renderErr)
	}
	if len(renders) == 0 {
		t.Fatal("no kustomization found under deployments/k8s")
	}
	return renders
}

// render returns one rendered kustomization by its path under deployments/k8s.
func render(t testing.TB, rel string) rendered {
	t.Helper()
	for _, r := range renderAll(t) {
		if r.K.Rel == rel {
			if r.Err != nil || len(r.Errs) > 0 {
				t.Fatalf("%s does not render cleanly: %v %v", rel, r.Err, r.Errs)
			}
			return r
		}
	}
	t.Fatalf("no kustomization %s", rel)
	return rendered{}
}

// secretTemplates reads deployments/k8s/secrets/*.example.yaml.
func secretTemplates(t testing.TB) SecretTemplates {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deployments", "k8s", "secrets")
	files, err := filepath.Glob(filepath.Join(dir, "*.example.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no secret templates in %s", dir)
	}
	out := SecretTemplates{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		set, errs := DecodeStrict(raw)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errs)
		}
		for _, o := range set.Objects {
			sec, ok := o.Obj.(*corev1.Secret)
			if !ok {
				t.Fatalf("%s: %s is not a Secret", f, o.ID())
			}
			keys := map[string]bool{}
			for k, v := range sec.StringData {
				keys[k] = true
				if k != "admin-user" && !strings.Contains(v, "CHANGE-ME") {
					t.Errorf("%s: key %s holds %q: templates hold placeholders only (CHANGE-ME)", f, k, v)
				}
			}
			for k := range sec.Data {
				t.Errorf("%s: key %s uses data: templates use stringData placeholders", f, k)
			}
			out[sec.Name] = keys
		}
	}
	return out
}

func reportProblems(t *testing.T, what string, ps []string) {
	t.Helper()
	for _, p := range ps {
		t.Errorf("%s: %s", what, p)
	}
}
