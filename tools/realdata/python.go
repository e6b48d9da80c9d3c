package realdata

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulse-iot/pulse/tools/nab"
)

// pythonCheck scores the same result files with NAB's own run.py, on a
// temporary copy of the NAB checkout (run.py writes into its tree).
func pythonCheck(ctx context.Context, o Options, corpus *nab.Corpus, rep *Report, pulse, gaussian []nab.File) (*PythonCheck, error) {
	if out, err := exec.CommandContext(ctx, o.Python, "-c", "import pandas").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", o.Python, ErrNoPandas, bytes.TrimSpace(out))
	}
	tmp, err := os.MkdirTemp("", "pulse-nab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(tmp, o.NABDir); err != nil {
		return nil, fmt.Errorf("copy %s: %w", o.NABDir, err)
	}
	results := filepath.Join(tmp, "results")
	check := &PythonCheck{Port: map[string]map[string]float64{}}
	add := func(det string, files []nab.File, scores [3]float64) error {
		for i, s := range corpus.Series {
			if err := nab.WriteResults(results, det, s, files[i].Scores); err != nil {
				return err
			}
		}
		check.Detectors = append(check.Detectors, det)
		check.Port[det] = map[string]float64{}
		for i, p := range nab.Profiles {
			check.Port[det][p.Name] = scores[i]
		}
		return nil
	}
	var ps [3]float64
	for i, r := range rep.NAB.Profiles {
		ps[i] = r.Score
	}
	if err := add("pulse", pulse, ps); err != nil {
		return nil, err
	}
	if gaussian != nil && rep.Gaussian != nil {
		if err := add("windowedGaussian", gaussian, *rep.Gaussian); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, o.Python, "run.py", "-d", strings.Join(check.Detectors, ","),
		"--optimize", "--score", "--normalize", "--skipConfirmation", "-n", "1")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("NAB run.py: %w\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(results, "final_results.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &check.Python); err != nil {
		return nil, fmt.Errorf("run.py's final_results.json: %w", err)
	}
	for _, det := range check.Detectors {
		if check.Python[det] == nil {
			return nil, fmt.Errorf("run.py wrote no scores for %s", det)
		}
	}
	return check, nil
}
