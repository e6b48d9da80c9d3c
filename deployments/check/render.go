package check

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Kustomization is one directory of deployments/k8s holding a
// kustomization.yaml: a buildable Kustomization or a Component.
type Kustomization struct {
	Dir       string // absolute
	Rel       string // relative to deployments/k8s ("." for the top)
	Component bool
	Uses      []string // components it includes, absolute
}

// Kustomizations lists every kustomization under deployments/k8s.
func Kustomizations(root string) ([]Kustomization, error) {
	top := filepath.Join(root, "deployments", "k8s")
	var out []Kustomization
	err := filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		dir := filepath.Dir(p)
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var k types.Kustomization
		if err := yaml.UnmarshalStrict(raw, &k); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(top, dir)
		kz := Kustomization{Dir: dir, Rel: rel, Component: k.Kind == types.ComponentKind}
		for _, c := range k.Components {
			kz.Uses = append(kz.Uses, filepath.Clean(filepath.Join(dir, c)))
		}
		out = append(out, kz)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Rel < out[j].Rel })
	return out, err
}

// RenderKrusty builds dir with the kustomize library (what kubectl embeds).
func RenderKrusty(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// RenderKubectl builds dir with `kubectl kustomize`.
func RenderKubectl(kubectl, dir string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %v: %s", dir, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// SplitDocs splits a multi-document YAML stream into JSON documents,
// dropping empty ones.
func SplitDocs(stream []byte) ([][]byte, error) {
	var out [][]byte
	for i, doc := range splitYAML(stream) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if string(js) == "null" {
			continue
		}
		out = append(out, js)
	}
	return out, nil
}

func splitYAML(stream []byte) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(string(stream), "\n") {
		if strings.TrimRight(line, "\r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}
