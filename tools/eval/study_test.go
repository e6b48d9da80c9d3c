package eval

import (
	"context"
	"strings"
	"testing"
)

// The study's "winsorized k=3 + pred" candidate is the robust detector
// written the slow way (sorting): the two must agree on every figure, so
// the study measures what ships.
func TestStudyCandidateMatchesTheRobustDetector(t *testing.T) {
	rows, err := Study(context.Background(), []uint64{7}, 3, 400)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]StudyRow{}
	for _, r := range rows {
		by[r.Estimator] = r
	}
	if len(by) != 2+len(StudyCandidates()) {
		t.Fatalf("study has %d estimators, want classic, robust and %d candidates", len(by), len(StudyCandidates()))
	}
	robust, cand := by["robust"], by["winsorized k=3 + pred"]
	cand.Estimator = robust.Estimator
	if robust != cand {
		t.Errorf("robust %+v\ncandidate %+v", robust, cand)
	}
	if robust.LocustRecall <= by["classic"].LocustRecall {
		t.Errorf("robust recall %.3f on the Locust mix, classic %.3f: the study's reason for robust is gone",
			robust.LocustRecall, by["classic"].LocustRecall)
	}
	md := StudyMarkdown(rows)
	if got := strings.Count(md, "\n"); got != 2+len(rows) {
		t.Errorf("markdown has %d lines, want %d", got, 2+len(rows))
	}
}
