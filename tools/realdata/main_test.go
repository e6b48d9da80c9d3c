package realdata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/tools/nab"
)

func TestMainWithoutNAB(t *testing.T) {
	var out bytes.Buffer
	err := Main(context.Background(), []string{"-nab", filepath.Join(t.TempDir(), "nope"), "-asd", "", "-out", ""}, &out, &out)
	if !errors.Is(err, nab.ErrNoCorpus) || !strings.Contains(err.Error(), "NAB_DIR") {
		t.Fatalf("Main without NAB: %v", err)
	}
}

// fakeNAB writes a one-series corpus in NAB's layout: 1000 values every 5
// minutes with a 10σ level shift at 800, labelled 760–840.
func fakeNAB(t *testing.T) string {
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var csv strings.Builder
	csv.WriteString("timestamp,value\n")
	t0 := time.Date(2015, 3, 1, 0, 0, 0, 0, time.UTC)
	stamp := func(i int) string { return t0.Add(time.Duration(i) * 5 * time.Minute).Format("2006-01-02 15:04:05") }
	for i := range 1000 {
		v := 50 + 2*rng.NormFloat64()
		if i >= 800 {
			v += 20
		}
		fmt.Fprintf(&csv, "%s,%.3f\n", stamp(i), v)
	}
	write("data/realTest/shift.csv", csv.String())
	write("labels/combined_windows.json", fmt.Sprintf(`{"realTest/shift.csv": [["%s.000000", "%s.000000"]]}`, stamp(760), stamp(840)))
	write("config/profiles.json", `{"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
"reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
"reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}}}`)
	for _, p := range []struct {
		name string
		base float64
	}{{"standard", -1}, {"reward_low_FP_rate", -1}, {"reward_low_FN_rate", -2}} {
		write("results/null/null_"+p.name+"_scores.csv", fmt.Sprintf("Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count\nTotals,,,,%v,0,0,0,0,1000\n", p.base))
	}
	write("results/final_results.json", `{"null": {"standard": 0, "reward_low_FP_rate": 0, "reward_low_FN_rate": 0}}`)
	return dir
}

func TestMainWritesTheSection(t *testing.T) {
	dir := fakeNAB(t)
	out := filepath.Join(t.TempDir(), "ACCURACY.md")
	if err := os.WriteFile(out, []byte("# Detector accuracy\n\nsynthetic results\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results := t.TempDir()
	var log bytes.Buffer
	args := []string{"-nab", dir, "-asd", "", "-out", out, "-results", results}
	if err := Main(context.Background(), args, &log, &log); err != nil {
		t.Fatalf("Main: %v\n%s", err, log.String())
	}
	doc, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The shift is caught at once, early in its window, and nothing else
	// opens an alert: NAB's score is that of one early detection.
	for _, want := range []string{"# Detector accuracy\n\nsynthetic results\n", "<!-- nab:begin -->", "| **Pulse alerts** (this run) | **", "| realTest | 1 | 1 | 1 |", "<!-- nab:end -->"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
	scores, err := nab.ReadResults(results, "pulse", &nab.Series{Name: "realTest/shift.csv", Values: make([]float64, 1000)})
	if err != nil {
		t.Fatal(err)
	}
	var detections []int
	for i, s := range scores {
		if s > 0 {
			detections = append(detections, i)
		}
	}
	if len(detections) != 1 || detections[0] < 800 || detections[0] > 802 {
		t.Errorf("detections at %v, want one at the shift (800–802)", detections)
	}
	// A second run replaces the section instead of adding one.
	if err := Main(context.Background(), args, &log, &log); err != nil {
		t.Fatal(err)
	}
	doc2, _ := os.ReadFile(out)
	if strings.Count(string(doc2), "<!-- nab:begin -->") != 1 || !bytes.Equal(doc, doc2) {
		t.Errorf("second run changed the report:\n%s", doc2)
	}
}
