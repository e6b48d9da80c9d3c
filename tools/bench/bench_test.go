package bench

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*options) bool
	}{
		{"defaults start a pipeline", nil, "", func(o *options) bool {
			return o.ingest == "" && o.duration == 20*time.Second && len(o.scenarios) == 9 && strings.HasPrefix(o.out, "docs/bench/") &&
				o.window == 50 && o.signalDevices == 5000 && o.baseline == ""
		}},
		{"-long is 60 s", []string{"-long", "-duration", "7s"}, "", func(o *options) bool { return o.duration == time.Minute }},
		{"given loopback URLs", []string{"-ingest", "http://127.0.0.1:8080/", "-api", "http://localhost:8081"}, "", func(o *options) bool {
			return o.ingest == "http://127.0.0.1:8080" && o.api == "http://localhost:8081"
		}},
		{"no JSON", []string{"-out", "-"}, "", func(o *options) bool { return o.out == "" }},
		{"remote URL refused", []string{"-ingest", "http://10.0.0.1:8080", "-api", "http://10.0.0.1:8081"}, "loopback", nil},
		{"remote URL allowed", []string{"-ingest", "http://10.0.0.1:8080", "-api", "http://10.0.0.1:8081", "-allow-remote"}, "", func(o *options) bool { return true }},
		{"remote redis refused", []string{"-ingest", "http://[::1]:8080", "-api", "http://[::1]:8081", "-redis", "192.168.1.2:6379"}, "loopback", nil},
		{"ingest without api", []string{"-ingest", "http://127.0.0.1:8080"}, "go together", nil},
		{"unknown scenario", []string{"-scenarios", "single,nope"}, "unknown", nil},
		{"bad rate", []string{"-rates", "1000,x"}, "-rates", nil},
		{"bad env", []string{"-env", "READ_COUNT"}, "NAME=value", nil},
		{"too short", []string{"-duration", "1s"}, "-duration", nil},
		{"named-metrics scenarios", []string{"-scenarios", "single-6,batch-6,memory-signals", "-signal-devices", "200"}, "", func(o *options) bool {
			return strings.Join(o.scenarios, ",") == "single-6,batch-6,memory-signals" && o.signalDevices == 200
		}},
		{"the window from -env", []string{"-env", "READ_COUNT=100,WINDOW_SIZE=120"}, "", func(o *options) bool { return o.window == 120 }},
		{"-window wins over -env", []string{"-env", "WINDOW_SIZE=120", "-window", "30"}, "", func(o *options) bool { return o.window == 30 }},
		{"bad window in -env", []string{"-env", "WINDOW_SIZE=x"}, "WINDOW_SIZE", nil},
		{"negative window", []string{"-window", "-3"}, "-window", nil},
		{"no signal devices", []string{"-signal-devices", "0"}, "-signal-devices", nil},
		{"a baseline", []string{"-baseline", "docs/bench/before.json"}, "", func(o *options) bool { return o.baseline == "docs/bench/before.json" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(o) {
				t.Fatalf("parseFlags(%q) = %+v, %v", tt.args, o, err)
			}
		})
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_xadd:calls=10,usec=25,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_evalsha:calls=2,usec=100,usec_per_call=50.00,rejected_calls=0,failed_calls=1\r\n"
	got := parseCommandStats(info)
	if len(got) != 2 || got["xadd"] != (cmdStat{10, 25}) || got["evalsha"] != (cmdStat{2, 100}) {
		t.Fatalf("parseCommandStats = %v", got)
	}
	d := commandDeltas(map[string]cmdStat{"xadd": {4, 10}}, got, 6)
	if len(d) != 2 || d[0].Command != "evalsha" || d[1].Calls != 6 || d[1].Usec != 15 || d[1].Share != 1 || d[1].PerThousandEvents != 1000 {
		t.Fatalf("commandDeltas = %+v", d)
	}
}

func TestUpdateMarkdownKeepsHandWrittenText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	r := &Report{Time: "2026-01-01T00:00:00Z", Command: "go run ./tools/cmd/pulse-bench", Label: "first"}
	r.evaluate()
	if err := r.updateMarkdown(path, filepath.Join(filepath.Dir(path), "bench", "a.json"), true); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	doc := strings.Replace(string(b), markBegin, "## Profile\n\nhand-written\n\n"+markBegin, 1) + "\n## Notes\n\nalso hand-written\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Label = "second"
	if err := r.updateMarkdown(path, "", true); err != nil {
		t.Fatal(err)
	}
	r.Label = "re-rendered"
	if err := r.updateMarkdown(path, "", false); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"hand-written", "also hand-written", "**re-rendered**", "| first |", "| second |", "[a.json](bench/a.json)"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Count(got, markBegin) != 1 || strings.Count(got, "## Latest run") != 1 || strings.Contains(got, "| re-rendered |") ||
		strings.Index(got, "| first |") > strings.Index(got, "| second |") {
		t.Errorf("generated section not replaced once, or history out of order:\n%s", got)
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"-label", "after: 407b345", "-md", "", "-env", "A=1,B=it's"})
	want := `-label 'after: 407b345' -md '' -env 'A=1,B=it'\''s'`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}
