package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/pulse-iot/pulse/internal/config"
	"sigs.k8s.io/yaml"
)

// The compose file loads with compose-go (the library `docker compose`
// uses: schema validation, interpolation, consistency), and its services'
// settings satisfy internal/config like the Kubernetes ones.
func TestCompose(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, "deployments", "compose")
	p := composeProject(t)
	for _, want := range []string{"redis", "ingest", "analyzer-1", "analyzer-2", "api", "prometheus", "grafana"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("service %s is missing", want)
		}
	}
	// Every bind-mounted file exists.
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && !fileExists(v.Source) {
				t.Errorf("%s: bind mount %s does not exist", name, v.Source)
			}
		}
	}
	// Redis keeps its AOF on a named volume, with the Kubernetes redis.conf.
	redis := p.Services["redis"]
	cmd := strings.Join(redis.Command, " ")
	if !strings.Contains(cmd, "redis.conf") {
		t.Errorf("redis command %q does not load redis.conf", cmd)
	}
	aof := false
	for _, v := range redis.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			aof = true
		}
		if v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Source, "redis.conf") {
			conf := RedisConf(mustRead(t, v.Source))
			if conf["appendonly"] != "yes" || conf["dir"] != "/data" {
				t.Errorf("redis.conf: appendonly %q dir %q", conf["appendonly"], conf["dir"])
			}
		}
	}
	if !aof {
		t.Error("redis: /data is not a named volume (the AOF would not survive)")
	}

	// Pulse services: built from the right Dockerfile, settings valid.
	consumers := map[string]bool{}
	shards := map[string]bool{}
	ports := map[string]string{}
	for name, s := range p.Services {
		var svc string
		switch {
		case strings.HasPrefix(s.Image, "pulse-"):
			svc = strings.TrimPrefix(strings.SplitN(s.Image, ":", 2)[0], "pulse-")
		default:
			continue
		}
		if s.Build != nil {
			if s.Build.Dockerfile != "Dockerfile."+svc || filepath.Clean(s.Build.Context) != root {
				t.Errorf("%s: builds %s in %s, want Dockerfile.%s in the repository root", name, s.Build.Dockerfile, s.Build.Context, svc)
			}
		}
		reads := map[string]bool{}
		for _, v := range config.VarsFor(svc) {
			reads[v] = true
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if !reads[k] {
				t.Errorf("%s: %s is not read by %s", name, k, svc)
			}
			if v != nil {
				env[k] = *v
			}
		}
		for _, req := range []string{"REDIS_ADDR", "SHARDS"} {
			if env[req] == "" {
				t.Errorf("%s: %s is not set", name, req)
			}
		}
		cfg, err := config.Load(svc, func(k string) string { return env[k] })
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		shards[env["SHARDS"]] = true
		ports[name] = cfg.HTTPAddr[strings.LastIndexByte(cfg.HTTPAddr, ':')+1:]
		if svc == config.Analyzer {
			if consumers[cfg.ConsumerName] {
				t.Errorf("%s: CONSUMER_NAME %s is not unique", name, cfg.ConsumerName)
			}
			consumers[cfg.ConsumerName] = true
		}
		if !s.ReadOnly {
			t.Errorf("%s: read_only root filesystem expected", name)
		}
	}
	if len(shards) != 1 {
		t.Errorf("SHARDS differs between services: %v", keys(shards))
	}
	if len(consumers) != 2 {
		t.Errorf("want two analyzers, got %d", len(consumers))
	}

	// Prometheus scrapes each Pulse container on its port, at /prometheus.
	var pc struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &pc); err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				host, port, _ := strings.Cut(tg, ":")
				if host == "localhost" {
					continue
				}
				if _, ok := p.Services[host]; !ok {
					t.Errorf("prometheus job %s: target %s is not a compose service", sc.JobName, tg)
				}
				if want, ok := ports[host]; ok {
					scraped[host] = true
					if port != want || sc.MetricsPath != "/prometheus" {
						t.Errorf("prometheus job %s: target %s%s, want port %s path /prometheus", sc.JobName, tg, sc.MetricsPath, want)
					}
				}
			}
		}
	}
	for name := range ports {
		if !scraped[name] {
			t.Errorf("prometheus does not scrape %s", name)
		}
	}
}

// composeProject loads deployments/compose/compose.yaml with compose-go.
func composeProject(t testing.TB) *types.Project {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deployments", "compose")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnv([]string{}), cli.WithName("pulse"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}
