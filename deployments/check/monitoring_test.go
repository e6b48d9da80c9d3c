package check

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func promDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "deployments", "k8s", "base", "monitoring", "prometheus")
}

// configMap returns a generated ConfigMap of the rendered base.
func baseConfigMap(t testing.TB, prefix string) *corev1.ConfigMap {
	t.Helper()
	r := render(t, "base")
	cm := r.Set.ConfigMapByPrefix("pulse", prefix)
	if cm == nil {
		t.Fatalf("rendered base has no ConfigMap %s", prefix)
	}
	return cm
}

// writeConfigMap writes a ConfigMap's keys as files, as the kubelet mounts
// them, and returns the directory.
func writeConfigMap(t testing.TB, cm *corev1.ConfigMap) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// promtool check config (Prometheus's own loader, then every rule file it
// names) on the ConfigMap Prometheus really mounts, and on the compose
// stack's configuration (with the same alerts.yml beside it).
func TestPromtoolCheckConfig(t *testing.T) {
	promtool, _ := deployedTool(t, Promtool)
	dir := writeConfigMap(t, baseConfigMap(t, "prometheus-config"))
	t.Log(run(t, promtool, "check", "config", filepath.Join(dir, "prometheus.yml")))

	cdir := t.TempDir()
	root := repoRoot(t)
	for src, dst := range map[string]string{
		filepath.Join(root, "deployments", "compose", "prometheus.yml"): "prometheus.yml",
		filepath.Join(promDir(t), "alerts.yml"):                         "alerts.yml",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cdir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Log(run(t, promtool, "check", "config", filepath.Join(cdir, "prometheus.yml")))
}

// kedaQueries returns the queries of the rendered base's KEDA triggers.
func kedaQueries(t testing.TB) []PromQLExpr {
	t.Helper()
	var out []PromQLExpr
	for _, so := range render(t, "base").Set.ScaledObjects() {
		for _, tr := range so.Spec.Triggers {
			if q := tr.Metadata["query"]; q != "" {
				out = append(out, PromQLExpr{"ScaledObject " + so.Name, q})
			}
		}
	}
	return out
}

// The dashboards' and the KEDA trigger's PromQL parses with the deployed
// Prometheus (promtool check rules on each as a recording rule): the
// library parser used elsewhere is a newer release, which accepts
// functions the deployed one does not know.
func TestPromtoolParsesDashboardsAndKEDA(t *testing.T) {
	promtool, release := deployedTool(t, Promtool)
	exprs := kedaQueries(t)
	for _, v := range baseConfigMap(t, "grafana-dashboards").Data {
		d, err := ParseDashboard([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, DashboardExprs(d)...)
	}
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{fmt.Sprintf("expr_%d", i), e.Expr})
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboards-and-keda", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "exprs.yml")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err == nil {
		t.Logf("%d expressions parse", len(exprs))
		return
	}
	for i, e := range exprs {
		if strings.Contains(string(out), fmt.Sprintf("%q", fmt.Sprintf("expr_%d", i))) {
			t.Errorf("%s: Prometheus %s rejects %q", e.Where, release, e.Expr)
		}
	}
	t.Errorf("promtool check rules: %v\n%s", err, out)
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool, _ := deployedTool(t, Promtool)
	dir := writeConfigMap(t, baseConfigMap(t, "prometheus-config"))
	t.Log(run(t, promtool, "check", "rules", filepath.Join(dir, "alerts.yml")))
}

// The deployed rules are the unit-tested ones, and the unit tests show
// every alert both firing and not firing.
func TestPromtoolTestRules(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(promDir(t), "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if baseConfigMap(t, "prometheus-config").Data["alerts.yml"] != string(src) {
		t.Fatal("the alerts.yml Prometheus mounts differs from the unit-tested file")
	}
	rf, err := ParseRules(src)
	if err != nil {
		t.Fatal(err)
	}
	testFile := filepath.Join(promDir(t), "tests", "alerts_test.yml")
	raw, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(raw, &tf); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: unit tests must show it firing (%v) and not firing (%v)", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	promtool, _ := deployedTool(t, Promtool)
	t.Log(run(t, promtool, "test", "rules", testFile))
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool, _ := deployedTool(t, Amtool)
	dir := writeConfigMap(t, baseConfigMap(t, "alertmanager-config"))
	t.Log(run(t, amtool, "check-config", filepath.Join(dir, "alertmanager.yml")))
}

// RequiredAlerts are the alerts the issues ask for.
var RequiredAlerts = []string{"ServiceDown", "HighLatency", "HighAnomalyRate", "AnalyzerLagHigh", "LagGrowing", "DeadLetters", "IngestRejecting", "RedisDown",
	"PulseAlertNotificationsFailing", "PulseAlertNotificationsLost"}

func checkExprs(t *testing.T, exprs []PromQLExpr) map[string]bool {
	t.Helper()
	known := KnownSeries()
	used := map[string]bool{}
	for _, e := range exprs {
		names, err := MetricNames(e.Expr)
		if err != nil {
			t.Errorf("%s: %v\n  %s", e.Where, err, e.Expr)
			continue
		}
		for _, n := range names {
			used[n] = true
			if _, ok := known[n]; !ok {
				if _, ok := Exempt[n]; !ok {
					t.Errorf("%s: metric %s is not exported by any Pulse service (contract) nor exempt", e.Where, n)
				}
			}
		}
	}
	return used
}

func TestAlertRules(t *testing.T) {
	rf, err := ParseRules([]byte(baseConfigMap(t, "prometheus-config").Data["alerts.yml"]))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Rule{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			byName[r.Alert] = r
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("alert %s: severity must be warning or critical", r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs summary and description", r.Alert)
			}
		}
	}
	for _, a := range RequiredAlerts {
		if _, ok := byName[a]; !ok {
			t.Errorf("alert %s is missing", a)
		}
	}
	checkExprs(t, RuleExprs(rf))

	// HighLatency: p95 of the buckets summed over pods, above 50ms, over 5m.
	hl := byName["HighLatency"]
	e, err := parser.NewParser(parser.Options{}).ParseExpr(hl.Expr)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		call, isCall := n.(*parser.Call)
		if !isCall || call.Func.Name != "histogram_quantile" {
			return nil
		}
		q, _ := call.Args[0].(*parser.NumberLiteral)
		agg, _ := call.Args[1].(*parser.AggregateExpr)
		if q == nil || q.Val != 0.95 || agg == nil || agg.Op != parser.SUM || agg.Without {
			return nil
		}
		g := strings.Join(agg.Grouping, ",")
		ok = strings.Contains(g, "le") && !strings.Contains(g, "pod") && !strings.Contains(g, "instance")
		return nil
	})
	if !ok || !strings.Contains(hl.Expr, "[5m]") || !regexp.MustCompile(`>\s*0\.05\b`).MatchString(hl.Expr) || hl.For != "5m" {
		t.Errorf("HighLatency must be histogram_quantile(0.95, sum by (..., le) (rate(...[5m]))) > 0.05 for 5m, aggregated across pods; got %q for %s", hl.Expr, hl.For)
	}

	// The SHARDS literal in ShardsUnowned follows the ConfigMap.
	if su, ok := byName["ShardsUnowned"]; ok {
		m := regexp.MustCompile(`<\s*(\d+)`).FindStringSubmatch(su.Expr)
		shards := render(t, "base").Set.ConfigMapByPrefix("pulse", "pulse-config").Data["SHARDS"]
		if m == nil || m[1] != shards {
			t.Errorf("ShardsUnowned compares with %v, SHARDS is %s", m, shards)
		}
	}
}

// RequiredPanels are the panels the issue asks for, per dashboard, with a
// metric each must query.
var RequiredPanels = map[string]map[string]string{
	"pulse-overview": {
		"Ingest requests/s by code": "http_requests_total",
		"Ingest latency":            "http_request_duration_seconds_bucket",
		"Events processed/s":        "pulse_events_processed_total",
		"Consumer lag per shard":    "pulse_shard_lag",
		"Anomalies/s by signal":     "anomalies_detected_total",
		"Fleet rolling average rps": "rolling_average_rps",
		// Device alerts and their delivery to Alertmanager.
		"Open device alerts":              "pulse_alerts_open",
		"Device alerts opened/s":          "pulse_alerts_opened_total",
		"Alert notifications/s by result": "pulse_alert_notifications_total",
		"Alert outbox size":               "pulse_alert_outbox_size",
		"Alert delivery latency":          "pulse_alert_notification_latency_seconds_bucket",
	},
	"pulse-analyzer": {
		"Lag per shard":             "pulse_shard_lag",
		"Pending per shard":         "pulse_shard_pending",
		"Batch sizes":               "pulse_batch_size_bucket",
		"Dead letters/s by reason":  "pulse_events_deadlettered_total",
		"Shard ownership":           "pulse_shard_lag",
		"Shards owned per analyzer": "pulse_shards_owned",
	},
}

func TestDashboards(t *testing.T) {
	cm := baseConfigMap(t, "grafana-dashboards")
	seen := map[string]bool{}
	for _, f := range slices.Sorted(maps.Keys(cm.Data)) {
		d, err := ParseDashboard([]byte(cm.Data[f]))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		seen[d.UID] = true
		checkExprs(t, DashboardExprs(d))
		ids := map[int]bool{}
		panels := map[string]Panel{}
		for _, p := range d.AllPanels() {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", f, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil {
				t.Errorf("%s: panel %q has no gridPos", f, p.Title)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			panels[p.Title] = p
		}
		for title, metric := range RequiredPanels[d.UID] {
			p, ok := panels[title]
			if !ok {
				t.Errorf("%s: panel %q is missing", f, title)
				continue
			}
			uses := false
			for _, tg := range p.Targets {
				names, _ := MetricNames(ExpandGrafana(tg.Expr))
				for _, n := range names {
					uses = uses || n == metric
				}
			}
			if !uses {
				t.Errorf("%s: panel %q does not query %s", f, title, metric)
			}
		}
		for title, want := range map[string]string{"Ingest latency": "0.5,0.95,0.99", "Alert delivery latency": "0.5,0.99"} {
			p, ok := panels[title]
			if !ok {
				continue
			}
			var qs []string
			for _, tg := range p.Targets {
				if m := regexp.MustCompile(`histogram_quantile\((0\.\d+)`).FindStringSubmatch(tg.Expr); m != nil {
					qs = append(qs, m[1])
				}
			}
			if strings.Join(qs, ",") != want {
				t.Errorf("%s: %s shows quantiles %v, want %s", f, title, qs, want)
			}
		}
		// The api's fleet gauges are the same on every replica: a sum
		// would count them once per api pod.
		for _, e := range DashboardExprs(d) {
			if regexp.MustCompile(`sum\s*(by\s*\([^)]*\)\s*)?\(\s*(pulse_alerts_open|pulse_fleet_\w+|rolling_average_rps)\b`).MatchString(e.Expr) {
				t.Errorf("%s: %q sums a fleet gauge every api replica reports: use max", e.Where, e.Expr)
			}
		}
	}
	for uid := range RequiredPanels {
		if !seen[uid] {
			t.Errorf("dashboard %s is not provisioned", uid)
		}
	}
}

// Every metric of the contract is used by at least one alert, dashboard or
// the KEDA trigger, so none is exported for nothing (informational).
func TestContractCoverage(t *testing.T) {
	rf, err := ParseRules([]byte(baseConfigMap(t, "prometheus-config").Data["alerts.yml"]))
	if err != nil {
		t.Fatal(err)
	}
	exprs := RuleExprs(rf)
	cm := baseConfigMap(t, "grafana-dashboards")
	for _, v := range cm.Data {
		d, err := ParseDashboard([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, DashboardExprs(d)...)
	}
	used := checkExprs(t, exprs)
	for _, m := range Contract {
		u := false
		for _, s := range m.SeriesNames() {
			u = u || used[s]
		}
		if !u && m.Name != "go_goroutines" && m.Name != "process_cpu_seconds_total" {
			t.Logf("contract metric %s is not shown anywhere", m.Name)
		}
	}
}

// The tools above really reject broken files, so their passing means
// something.
func TestToolsRejectBrokenFiles(t *testing.T) {
	promtool, _ := deployedTool(t, Promtool)
	amtool, _ := deployedTool(t, Amtool)
	dir := t.TempDir()
	files := map[string]string{
		"r.yml":             "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n",
		"bad-action.yml":    "scrape_configs:\n  - job_name: x\n    static_configs: [{targets: [\"a:1\"]}]\n    relabel_configs:\n      - action: keepequals\n",
		"missing-rules.yml": "rule_files: [nope.yml]\n",
		"bad-rule.yml":      "rule_files: [r.yml]\n",
		"bad-receiver.yml":  "route:\n  receiver: nobody\nreceivers:\n  - name: ops\n",
		"test-wrong.yml":    "rule_files: [ok.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: up\n        values: 0x5\n    alert_rule_test:\n      - eval_time: 5m\n        alertname: Down\n",
		"ok.yml":            "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string // in the output: rejected for the right reason
	}{
		{[]string{promtool, "check", "config", "bad-action.yml"}, `unknown relabel action "keepequals"`},
		{[]string{promtool, "check", "config", "missing-rules.yml"}, `"nope.yml" does not point to an existing file`},
		{[]string{promtool, "check", "config", "bad-rule.yml"}, "unclosed left parenthesis"},
		{[]string{promtool, "check", "rules", "r.yml"}, "unclosed left parenthesis"},
		{[]string{promtool, "test", "rules", "test-wrong.yml"}, "alertname: Down, time: 5m"}, // fires; the test expects silence
		{[]string{amtool, "check-config", "bad-receiver.yml"}, `undefined receiver "nobody"`},
	} {
		cmd := exec.Command(tc.args[0], tc.args[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s %s: %v, want a failure with %q\n%s", filepath.Base(tc.args[0]), strings.Join(tc.args[1:], " "), err, tc.want, out)
		}
	}
}

// Every metric of the contract is named in the services' code (a string
// literal in a non-test file of ingest, analyzer, api or internal), so
// rules and dashboards cannot use a name nobody defines; Go's own
// collectors are the exception. TestEndToEnd then proves each service
// exports what it owns.
func TestContractInSource(t *testing.T) {
	root := repoRoot(t)
	defined := map[string]bool{}
	for _, dir := range []string{"ingest", "analyzer", "api", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			src := mustRead(t, p)
			for _, m := range Contract {
				if strings.Contains(src, `"`+m.Name+`"`) {
					defined[m.Name] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range Contract {
		if !defined[m.Name] && m.Name != "go_goroutines" && m.Name != "process_cpu_seconds_total" {
			t.Errorf("contract metric %s is named in no service's code", m.Name)
		}
	}
}

// docBlock returns the fenced block after <!-- check: name --> in doc.
func docBlock(t *testing.T, doc, name string) string {
	t.Helper()
	m := regexp.MustCompile("(?s)<!-- check: " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/ALERTING.md has no block marked %q", name)
	}
	return m[1]
}

// The shipped delivery rules, device route, inhibition and receiver are
// the ones docs/ALERTING.md proposes and its runbook explains.
func TestAlertingDocShipped(t *testing.T) {
	doc := mustRead(t, filepath.Join(repoRoot(t), "docs", "ALERTING.md"))

	docRules, err := ParseRules([]byte(docBlock(t, doc, "promtool rules")))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := ParseRules([]byte(baseConfigMap(t, "prometheus-config").Data["alerts.yml"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, dg := range docRules.Groups {
		found := false
		for _, g := range shipped.Groups {
			if g.Name == dg.Name {
				found = true
				if !reflect.DeepEqual(g.Rules, dg.Rules) {
					t.Errorf("alerts.yml group %s differs from docs/ALERTING.md:\nshipped: %+v\ndocs:    %+v", g.Name, g.Rules, dg.Rules)
				}
			}
		}
		if !found {
			t.Errorf("alerts.yml has no group %s (docs/ALERTING.md)", dg.Name)
		}
	}

	type amConfig struct {
		Route struct {
			Routes []map[string]any `json:"routes"`
		} `json:"route"`
		InhibitRules []map[string]any `json:"inhibit_rules"`
		Receivers    []map[string]any `json:"receivers"`
	}
	parse := func(what, y string) amConfig {
		var c amConfig
		if err := yaml.Unmarshal([]byte(y), &c); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
	device := func(m map[string]any, key string) bool {
		b, _ := yaml.Marshal(m[key])
		return strings.Contains(string(b), `alertname="PulseDeviceAnomaly"`)
	}
	pick := func(list []map[string]any, match func(map[string]any) bool) []map[string]any {
		var out []map[string]any
		for _, m := range list {
			if match(m) {
				out = append(out, m)
			}
		}
		return out
	}
	d := parse("docs/ALERTING.md", docBlock(t, doc, "amtool"))
	s := parse("alertmanager.yml", baseConfigMap(t, "alertmanager-config").Data["alertmanager.yml"])
	for _, part := range []struct {
		what       string
		docs, ship []map[string]any
		match      func(map[string]any) bool
	}{
		{"device route", d.Route.Routes, s.Route.Routes, func(m map[string]any) bool { return device(m, "matchers") }},
		{"device inhibition", d.InhibitRules, s.InhibitRules, func(m map[string]any) bool { return device(m, "source_matchers") }},
		{"device receiver", d.Receivers, s.Receivers, func(m map[string]any) bool { return m["name"] == "device-alerts" }},
	} {
		want, got := pick(part.docs, part.match), pick(part.ship, part.match)
		if len(want) != 1 || !reflect.DeepEqual(want, got) {
			t.Errorf("alertmanager.yml's %s differs from docs/ALERTING.md:\nshipped: %v\ndocs:    %v", part.what, got, want)
		}
	}
}

// With the shipped routes (amtool at the deployed release), device alerts
// reach their receiver whatever their severity, and Pulse's own alerts
// still reach e-mail.
func TestAmtoolRoutes(t *testing.T) {
	amtool, _ := deployedTool(t, Amtool)
	dir := writeConfigMap(t, baseConfigMap(t, "alertmanager-config"))
	cfg := filepath.Join(dir, "alertmanager.yml")
	for _, tc := range []struct {
		labels   []string
		receiver string
	}{
		{[]string{"alertname=PulseDeviceAnomaly", "device_id=sensor-42", "signal=rps", "severity=warning", "site=berlin"}, "device-alerts"},
		{[]string{"alertname=PulseDeviceAnomaly", "device_id=sensor-42", "signal=rps", "severity=critical"}, "device-alerts"},
		{[]string{"alertname=ServiceDown", "job=api", "severity=critical"}, "ops-email"},
		{[]string{"alertname=PulseAlertNotificationsLost", "job=analyzer", "severity=critical"}, "ops-email"},
		{[]string{"alertname=PulseAlertNotificationsFailing", "job=analyzer", "severity=warning"}, "ops-email"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + cfg, "--verify.receivers=" + tc.receiver}, tc.labels...)
		if out := run(t, amtool, args...); strings.TrimSpace(out) != tc.receiver {
			t.Errorf("%v goes to %q, want %s", tc.labels, strings.TrimSpace(out), tc.receiver)
		}
	}
}
