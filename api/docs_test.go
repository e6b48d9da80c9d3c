package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/state"
)

// keyOrder lists the keys of a JSON document in order, as paths ("last.score");
// an array contributes its first element's ("alerts[].id").
func keyOrder(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	var out []string
	var walk func(prefix string)
	walk = func(prefix string) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				k, _ := dec.Token()
				out = append(out, prefix+k.(string))
				walk(prefix + k.(string) + ".")
			}
			dec.Token() // }
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				mark := len(out)
				walk(strings.TrimSuffix(prefix, ".") + "[].")
				if i > 0 {
					out = out[:mark] // the first element's keys stand for all
				}
			}
			dec.Token() // ]
		}
	}
	walk("")
	return out
}

// docs/API.md's JSON examples of the api's answers list the fields in the
// order the service writes them, every field, none more.
func TestAPIDocExamplesHaveTheServiceFieldOrder(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "API.md"))
	if err != nil {
		t.Fatal(err)
	}
	closed := 1.5
	written := map[string]any{
		"fleet": fleetResponse{UnknownLag: []int{}, Detectors: []string{}},
		"device": deviceResponse{OpenAlerts: []openAlert{{}},
			Signals: map[string]signalView{"cpu": {}, "rps": {}, "temperature": {}}, Tags: map[string]string{"model": "", "site": ""}},
		"signal":    fleetResponse{UnknownLag: []int{}, Detectors: []string{}, Signal: "temperature"},
		"group":     groupResponse{},
		"anomalies": map[string]any{"anomalies": []state.Anomaly{{}}},
		"alerts":    map[string]any{"alerts": []notify.Alert{{ClosedAt: &closed}}},
	}
	kind := func(doc string) string {
		switch {
		case strings.HasPrefix(doc, `{"rolling_average"`) && strings.Contains(doc, `"signal"`):
			return "signal"
		case strings.HasPrefix(doc, `{"rolling_average"`):
			return "fleet"
		case strings.HasPrefix(doc, `{"tag"`):
			return "group"
		case strings.HasPrefix(doc, `{"device_id"`) && strings.Contains(doc, `"rolling_average"`):
			return "device"
		case strings.HasPrefix(doc, `{"anomalies"`):
			return "anomalies"
		case strings.HasPrefix(doc, `{"alerts"`):
			return "alerts"
		}
		return ""
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		doc := strings.TrimSpace(m[1])
		k := kind(doc)
		if k == "" {
			continue
		}
		seen[k] = true
		want, _ := json.Marshal(written[k])
		if got, w := keyOrder(t, []byte(doc)), keyOrder(t, want); !reflect.DeepEqual(got, w) {
			t.Errorf("docs/API.md %s example has fields\n%q\nthe service writes\n%q", k, got, w)
		}
	}
	for k := range written {
		if !seen[k] {
			t.Errorf("docs/API.md has no %s example", k)
		}
	}
}
