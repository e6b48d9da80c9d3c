package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulse-iot/pulse/internal/alert"
)

func TestDefaults(t *testing.T) {
	c, err := Load(Ingest, MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisAddr != "127.0.0.1:6379" || c.HTTPAddr != ":8080" || c.Shards != 16 || c.WindowSize != 50 ||
		c.MinSamples != 10 || c.ZThreshold != 2 || c.Detector != "robust" || c.MaxBatch != 1000 ||
		c.MaxBodyBytes != 1<<20 || c.RedisTimeout != 2*time.Second || c.KeyPrefix != "pulse" ||
		c.LogLevel != "info" || c.LogFormat != "json" || c.MaxMetrics != 16 {
		t.Errorf("ingest defaults = %+v", c)
	}
	for service, addr := range map[string]string{API: ":8081", Analyzer: ":8082"} {
		c, err := Load(service, MapEnv(nil))
		if err != nil || c.HTTPAddr != addr {
			t.Errorf("%s HTTP_ADDR default = %q (%v), want %s", service, c.HTTPAddr, err, addr)
		}
	}
	a, _ := Load(Analyzer, MapEnv(map[string]string{"CONSUMER_NAME": ""}))
	if a.ConsumerName == "" || a.LeaseTTL != 5*time.Second || a.ReadCount != 500 ||
		a.AlertParams() != alert.DefaultParams() {
		t.Errorf("analyzer defaults = %+v", a)
	}
}

func TestInvalidValuesNameTheirVariable(t *testing.T) {
	tests := []struct {
		service, name, value string
	}{
		{Ingest, "REDIS_ADDR", "nohost"},
		{Ingest, "REDIS_TIMEOUT", "abc"},
		{Ingest, "REDIS_TIMEOUT", "-1s"},
		{API, "SHARDS", "0"},
		{API, "SHARDS", "x"},
		{Analyzer, "HTTP_ADDR", "localhost:99999"},
		{Ingest, "WINDOW_SIZE", "1"},
		{API, "MIN_SAMPLES", "0"},
		{Analyzer, "Z_THRESHOLD", "-2"},
		{Analyzer, "Z_THRESHOLD", "NaN"},
		{Ingest, "DETECTOR", "magic"},
		{Ingest, "MAX_BATCH", "0"},
		{Ingest, "MAX_METRICS", "0"},
		{Ingest, "MAX_METRICS", "257"},
		{Ingest, "MAX_METRICS", "many"},
		{API, "MAX_BODY_BYTES", "ten"},
		{Analyzer, "LOG_LEVEL", "loud"},
		{Ingest, "LOG_FORMAT", "xml"},
		{Ingest, "KEY_PREFIX", "a b"},
		{Analyzer, "LEASE_TTL", "100ms"},
		{Analyzer, "READ_COUNT", "0"},
		{Analyzer, "ALERT_THRESHOLD", "0"},
		{Analyzer, "ALERT_THRESHOLD", "1.5"},
		{Analyzer, "ALERT_THRESHOLD", "NaN"},
		{Analyzer, "ALERT_THRESHOLD", "high"},
		{Analyzer, "ALERT_RECOVERY", "0"},
		{Analyzer, "ALERT_RECOVERY", "65536"},
		{Analyzer, "ALERT_RECOVERY", "2.5"},
		{Analyzer, "ALERTMANAGER_URL", "alertmanager:9093"},
		{Analyzer, "ALERTMANAGER_URL", "http://a:9093/api/v2/alerts?x=1"},
		{Analyzer, "ALERTMANAGER_URL", "http://a:9093,http://a:9093/"},
		{Analyzer, "ALERT_RESEND", "500ms"},
		{Analyzer, "ALERT_RESEND", "2h"},
		{Analyzer, "ALERT_LINK_BASE", "ftp://pulse"},
		{Analyzer, "ALERT_OUTBOX_MAX", "0"},
		{Analyzer, "ALERT_OUTBOX_MAX", "1000001"},
		{API, "REDIS_CLUSTER_ADDRS", "a:1,b"},
		{Ingest, "MAX_INFLIGHT", "-1"},
		{API, "RATE_LIMIT", "fast"},
		{Ingest, "RATE_BURST", "-2"},
		{Ingest, "MAX_LAG", "lots"},
		{API, "ADMIN_ADDR", "nowhere"},
		{Ingest, "REDIS_ADDR", "::1:6379"}, // IPv6 needs brackets
		{Ingest, "REDIS_ADDR", "host:port"},
		{Analyzer, "REDIS_CLUSTER_ADDRS", "[::1]:7000,::1:7001"},
		{Analyzer, "ADMIN_ADDR", "nowhere"},
		{Ingest, "BODY_TIMEOUT", "soon"},
		{Ingest, "BODY_TIMEOUT", "0s"},
		{API, "BODY_TIMEOUT", "500ms"},
		{Analyzer, "BODY_TIMEOUT", "11m"},
	}
	for _, tt := range tests {
		t.Run(tt.service+" "+tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(tt.service, MapEnv(map[string]string{tt.name: tt.value}))
			// The variable's own check must reject it, not a cross-check
			// of two variables that happens to name it (WINDOW_SIZE=1 also
			// fails MIN_SAMPLES ≤ WINDOW_SIZE with the default MIN_SAMPLES).
			if want := fmt.Sprintf("%s=%q", tt.name, tt.value); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Load = %v, want an error naming %s", err, want)
			}
		})
	}
}

func TestAdminAddrIsNotThePublicOne(t *testing.T) {
	for _, service := range []string{Ingest, API, Analyzer} {
		_, err := Load(service, MapEnv(map[string]string{"HTTP_ADDR": "127.0.0.1:9000", "ADMIN_ADDR": "127.0.0.1:9000"}))
		if err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") {
			t.Errorf("%s with ADMIN_ADDR = HTTP_ADDR: %v, want an error naming ADMIN_ADDR", service, err)
		}
		c, err := Load(service, MapEnv(map[string]string{"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:9001"}))
		if err != nil || c.AdminAddr != "127.0.0.1:9001" {
			t.Errorf("%s with a separate ADMIN_ADDR: %q, %v", service, c.AdminAddr, err)
		}
		// Port 0 is a free port for each listener.
		if _, err := Load(service, MapEnv(map[string]string{"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0"})); err != nil {
			t.Errorf("%s with both on port 0: %v", service, err)
		}
	}
}

// Profiles are off and bodies are cut after 30 s unless configured, on
// every service; read tokens guard every service's metrics, so every
// service reads them.
func TestHardeningDefaults(t *testing.T) {
	for _, service := range []string{Ingest, API, Analyzer} {
		c, err := Load(service, MapEnv(nil))
		if err != nil || c.AdminAddr != "" || c.BodyTimeout != 30*time.Second {
			t.Errorf("%s: ADMIN_ADDR %q, BODY_TIMEOUT %v (%v); want off and 30s", service, c.AdminAddr, c.BodyTimeout, err)
		}
		c, err = Load(service, MapEnv(map[string]string{"READ_TOKENS": "t1,t2", "BODY_TIMEOUT": "2m"}))
		if err != nil || len(c.ReadTokens) != 2 || c.BodyTimeout != 2*time.Minute {
			t.Errorf("%s: READ_TOKENS %q, BODY_TIMEOUT %v (%v)", service, c.ReadTokens, c.BodyTimeout, err)
		}
		if s := c.String(); strings.Contains(s, "t1") {
			t.Errorf("%s: String() = %s shows a read token", service, s)
		}
	}
}

// The alert settings the analyzer accepts are those the alert layer
// accepts, at both ends of their ranges.
func TestAlertSettings(t *testing.T) {
	tests := []struct {
		threshold, recovery string
		want                alert.Params
	}{
		{"0.9", "3", alert.Params{Threshold: 0.9, Recovery: 3}},
		{"1", "1", alert.Params{Threshold: 1, Recovery: 1}},
		{"1e-6", "65535", alert.Params{Threshold: 1e-6, Recovery: 65535}},
	}
	for _, tt := range tests {
		c, err := Load(Analyzer, MapEnv(map[string]string{"ALERT_THRESHOLD": tt.threshold, "ALERT_RECOVERY": tt.recovery}))
		if err != nil || c.AlertParams() != tt.want || c.AlertParams().Validate() != nil {
			t.Errorf("ALERT_THRESHOLD=%s ALERT_RECOVERY=%s: %+v, %v; want %+v", tt.threshold, tt.recovery, c.AlertParams(), err, tt.want)
		}
	}
}

func TestMinSamplesMayNotExceedWindow(t *testing.T) {
	_, err := Load(API, MapEnv(map[string]string{"WINDOW_SIZE": "20", "MIN_SAMPLES": "21"}))
	if err == nil || !strings.Contains(err.Error(), "MIN_SAMPLES") {
		t.Errorf("Load = %v, want an error naming MIN_SAMPLES", err)
	}
}

func TestStringMasksSecrets(t *testing.T) {
	c, err := Load(Ingest, MapEnv(map[string]string{"REDIS_PASSWORD": "s3cret", "API_KEYS": "k-one, k-two"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.APIKeys) != 2 || c.APIKeys[1] != "k-two" {
		t.Fatalf("API_KEYS parsed as %q", c.APIKeys)
	}
	if s := c.String(); strings.Contains(s, "s3cret") || strings.Contains(s, "k-one") || !strings.Contains(s, "***") {
		t.Errorf("String() = %s, want the secrets masked", s)
	}
}

// Delivery to Alertmanager is off by default; its settings are read as
// given, and a password in ALERTMANAGER_URL never reaches the log line.
func TestAlertDelivery(t *testing.T) {
	c, err := Load(Analyzer, MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.AlertmanagerURLs != nil || c.AlertResend != time.Minute || c.AlertLinkBase != "" || c.AlertOutboxMax != 10000 {
		t.Errorf("delivery defaults: %q, %v, %q, %d", c.AlertmanagerURLs, c.AlertResend, c.AlertLinkBase, c.AlertOutboxMax)
	}
	c, err = Load(Analyzer, MapEnv(map[string]string{
		"ALERTMANAGER_URL": "http://am-0:9093/, https://ops:hunter2@am-1.example/am", "ALERT_RESEND": "30s",
		"ALERT_LINK_BASE": "https://pulse.example.com/", "ALERT_OUTBOX_MAX": "50"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://am-0:9093", "https://ops:hunter2@am-1.example/am"}
	if fmt.Sprint(c.AlertmanagerURLs) != fmt.Sprint(want) || c.AlertResend != 30*time.Second ||
		c.AlertLinkBase != "https://pulse.example.com" || c.AlertOutboxMax != 50 {
		t.Errorf("delivery settings: %q, %v, %q, %d", c.AlertmanagerURLs, c.AlertResend, c.AlertLinkBase, c.AlertOutboxMax)
	}
	if s := c.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "am-1.example") {
		t.Errorf("String() = %s, want the Alertmanager password masked", s)
	}
	if c.AlertmanagerURLs[1] != want[1] {
		t.Error("String() masked the configuration itself, not its copy")
	}
}

// MAX_METRICS is ingest's alone: the analyzers take any entry of up to
// metric.MaxMetricsLimit named metrics, whatever ingest allowed.
func TestMaxMetrics(t *testing.T) {
	for _, v := range []string{"1", "256"} {
		c, err := Load(Ingest, MapEnv(map[string]string{"MAX_METRICS": v}))
		if err != nil || strconv.Itoa(c.MaxMetrics) != v {
			t.Errorf("MAX_METRICS=%s: %d, %v", v, c.MaxMetrics, err)
		}
	}
	for _, service := range []string{Analyzer, API} {
		if c, err := Load(service, MapEnv(map[string]string{"MAX_METRICS": "0"})); err != nil || c.MaxMetrics != 0 {
			t.Errorf("%s read MAX_METRICS: %d, %v", service, c.MaxMetrics, err)
		}
	}
}

func TestLists(t *testing.T) {
	c, err := Load(API, MapEnv(map[string]string{"REDIS_CLUSTER_ADDRS": " 127.0.0.1:7000,127.0.0.1:7001 ,", "RATE_LIMIT": "50"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RedisClusterAddrs) != 2 || c.RedisClusterAddrs[1] != "127.0.0.1:7001" || c.RateBurst != 100 {
		t.Errorf("cluster addrs %q, burst %d", c.RedisClusterAddrs, c.RateBurst)
	}
}

// The configuration table (docs/CONFIG.md) must list every variable the services
// read, so the docs cannot drift from the code.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars() {
		if !strings.Contains(string(b), "| `"+v.Name+"` |") {
			t.Errorf("docs/CONFIG.md has no configuration row for %s", v.Name)
			continue
		}
		// Defaults derived from code (ALERT_THRESHOLD's) must not drift either.
		if row := "| `" + v.Name + "` | `" + v.Default + "` |"; v.Default != "" && !strings.Contains(string(b), row) {
			t.Errorf("docs/CONFIG.md: the row of %s does not start %s", v.Name, row)
		}
	}
}

func TestAddressForms(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:6379", "[::1]:6379", "redis:6379", "localhost:0"} {
		if _, err := Load(Ingest, MapEnv(map[string]string{"REDIS_ADDR": addr})); err != nil {
			t.Errorf("REDIS_ADDR=%s: %v", addr, err)
		}
	}
	if _, err := Load(API, MapEnv(map[string]string{"HTTP_ADDR": ":8081"})); err != nil {
		t.Errorf("HTTP_ADDR=:8081: %v", err)
	}
}
