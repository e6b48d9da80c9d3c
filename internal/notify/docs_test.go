package notify

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulse-iot/pulse/internal/alertmanagertest"
)

// docs/ALERTING.md works as written: its Alertmanager configuration passes
// amtool, its rules promtool and their unit tests, its example
// notification is what the encoder writes, and it names the metrics and
// defaults the code has.

func alertingDoc(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "ALERTING.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// block returns the fenced block after <!-- check: name -->.
func block(t *testing.T, doc, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- check: " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)```")
	m := re.FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/ALERTING.md has no block marked %q", name)
	}
	return m[1]
}

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("skipping: %s not installed (apt-get install %s)", name, map[string]string{"amtool": "prometheus-alertmanager", "promtool": "prometheus"}[name])
	}
	return p
}

func TestDocAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool")
	dir := t.TempDir()
	f := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(f, []byte(block(t, alertingDoc(t), "amtool")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(amtool, "check-config", f).CombinedOutput(); err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}

func TestDocRules(t *testing.T) {
	promtool := tool(t, "promtool")
	doc := alertingDoc(t)
	dir := t.TempDir()
	for name, content := range map[string]string{"rules.yml": block(t, doc, "promtool rules"), "rules_test.yml": block(t, doc, "promtool test")} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"test", "rules", "rules_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The example is what the encoder writes for that alert.
func TestDocNotification(t *testing.T) {
	var n alertmanagertest.Notification
	if err := json.Unmarshal([]byte(block(t, alertingDoc(t), "notification")), &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Alerts) != 1 {
		t.Fatalf("example has %d alerts", len(n.Alerts))
	}
	ex := n.Alerts[0]
	f := func(k string) float64 {
		v, err := strconv.ParseFloat(ex.Annotations[k], 64)
		if err != nil {
			t.Fatalf("annotation %s: %v", k, err)
		}
		return v
	}
	events, _ := strconv.Atoi(ex.Annotations["events"])
	a := Alert{ID: ex.Annotations["alert_id"], DeviceID: ex.Labels["device_id"], Signal: ex.Labels["signal"], State: StateOpen,
		OpenedAt: float64(ex.StartsAt.UnixMilli()) / 1000, Score: f("score"), ZScore: f("z_score"), Value: f("value"),
		Expected: Band{f("expected_low"), f("expected_high")}, Events: events,
		Tags: map[string]string{"site": "berlin", "rack.id": "r7"}}
	enc := Encoder{Resend: time.Minute, LinkBase: "https://pulse.example.com/api"}
	body, err := enc.Encode([]Alert{a}, ex.StartsAt.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []decoded
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got[0].Labels, ex.Labels) {
		t.Errorf("labels: the encoder writes %v, the docs show %v", got[0].Labels, ex.Labels)
	}
	if !reflect.DeepEqual(got[0].Annotations, ex.Annotations) {
		t.Errorf("annotations: the encoder writes %v, the docs show %v", got[0].Annotations, ex.Annotations)
	}
	if got[0].GeneratorURL != ex.GeneratorURL || !got[0].StartsAt.Equal(ex.StartsAt) {
		t.Errorf("generatorURL, startsAt: the encoder writes %s, %v; the docs show %s, %v", got[0].GeneratorURL, got[0].StartsAt, ex.GeneratorURL, ex.StartsAt)
	}
}

func TestDocNamesMetricsAndDefaults(t *testing.T) {
	doc := alertingDoc(t)
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, m := range regexp.MustCompile(`pulse_alert_[a-z_]+`).FindAllString(doc, -1) {
		if !have[m] {
			t.Errorf("docs name %s, which the sender does not export", m)
		}
	}
	for name := range have {
		if !strings.Contains(doc, "`"+name) {
			t.Errorf("docs do not describe %s", name)
		}
	}
	for _, r := range results {
		if !strings.Contains(doc, "`"+r+"`") {
			t.Errorf("docs do not describe result %q", r)
		}
	}
	for _, row := range []string{
		"| `ALERT_RESEND` | `" + strings.TrimSuffix(DefaultResend.String(), "0s") + "` |",
		"| `ALERT_OUTBOX_MAX` | `" + strconv.Itoa(DefaultOutboxMax) + "` |",
	} {
		if !strings.Contains(doc, row) {
			t.Errorf("docs lack the row %q", row)
		}
	}
}
