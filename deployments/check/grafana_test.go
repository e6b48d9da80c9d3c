package check

import (
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// RequiredAPIPanels are the Overview's panels that read the api (the
// signal and tag views Prometheus cannot give), each with the api path
// it must read.
var RequiredAPIPanels = map[string]string{
	"Signal $signal across the fleet":  "/analyze?signal=${signal}",
	"Tag $tag":                         "/analyze?tag=${tag}",
	"Devices tagged $tag":              "/devices?limit=100&tag=${tag}",
	"Anomalies of devices tagged $tag": "/anomalies?limit=50&tag=${tag}",
}

// The Overview selects a signal and a tag from what the api lists, and
// its per-signal and per-tag panels read the api with them; every query
// of the Pulse API datasource is a path of the api using defined
// variables only.
func TestDashboardsReadSignalsAndTagsFromTheAPI(t *testing.T) {
	cm := baseConfigMap(t, "grafana-dashboards")
	seen := false
	for _, f := range slices.Sorted(maps.Keys(cm.Data)) {
		d, err := ParseDashboard([]byte(cm.Data[f]))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		for _, q := range APIQueries(d) {
			reportProblems(t, f, CheckAPIQuery(q, vars))
		}
		if d.UID != "pulse-overview" {
			continue
		}
		seen = true
		selectors := map[string]string{}
		for _, v := range d.Templating.List {
			if isAPI(v.Datasource) && v.Query.InfinityQuery != nil {
				selectors[v.Name] = v.Query.InfinityQuery.URL
			}
		}
		if selectors["signal"] != "/signals" || selectors["tag"] != "/tags" {
			t.Errorf("%s: selectors %v, want signal from /signals and tag from /tags (the Pulse API datasource)", f, selectors)
		}
		urls := map[string][]string{}
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				if isAPI(tg.Datasource) || tg.Datasource == nil && isAPI(p.Datasource) {
					urls[p.Title] = append(urls[p.Title], tg.URL)
				}
			}
		}
		for title, want := range RequiredAPIPanels {
			if got := urls[title]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: panel %q reads %v from the api, want %s", f, title, got, want)
			}
		}
	}
	if !seen {
		t.Error("dashboard pulse-overview is not provisioned")
	}
}

func TestCheckAPIQuery(t *testing.T) {
	vars := map[string]bool{"signal": true, "tag": true}
	tests := []struct {
		url, want string
	}{
		{"/analyze?signal=${signal}", ""},
		{"/devices?limit=100&tag=$tag", ""},
		{"/signals", ""},
		{"http://api:8081/signals", "is not a path"},
		{"/prometheus", "is not a path"},
		{"/analyze?tag=${site}", "uses $site"},
	}
	for _, tt := range tests {
		ps := CheckAPIQuery(DashboardAPIQuery{"q", tt.url}, vars)
		got := strings.Join(ps, "\n")
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("CheckAPIQuery(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

// The Pulse API datasource's wiring: plugin installed, Service and
// NetworkPolicy, and with read tokens a token from a Secret file; each
// mistake is reported.
func TestAPIDatasourceChecksCatchMistakes(t *testing.T) {
	secrets := secretTemplates(t)
	for _, rel := range []string{"base", "overlays/api-keys"} {
		if ps := CheckSet(fresh(t, rel), secrets).Problems; len(ps) > 0 {
			t.Skipf("%s has problems; TestCrossReferences reports them", rel)
		}
	}
	grafana := func(s *Set) *corev1.Container { return namedContainer(s.Deployment("pulse", "grafana"), "grafana") }
	datasources := func(s *Set) *corev1.ConfigMap {
		return s.ConfigMapByPrefix("pulse", "grafana-provisioning-datasources")
	}
	tests := []struct {
		name, rel string
		mutate    func(s *Set)
		want      string
	}{
		{"plugin not installed", "base", func(s *Set) {
			c := grafana(s)
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GF_PLUGINS_PREINSTALL_SYNC" })
		}, "plugin yesoreyeram-infinity-datasource is not in GF_PLUGINS_PREINSTALL_SYNC"},
		{"api not reachable", "base", func(s *Set) {
			np := policy(t, s, "api")
			np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:2]
		}, "cannot reach Deployment pulse/api on port 8081 (grafana datasource Pulse API)"},
		{"another Service", "base", func(s *Set) {
			cm := datasources(s)
			cm.Data["datasources.yaml"] = strings.Replace(cm.Data["datasources.yaml"], "url: http://api:8081", "url: http://ingest:8080", 1)
		}, "Service ingest does not select the api's pods"},
		{"a query path in the URL", "base", func(s *Set) {
			cm := datasources(s)
			cm.Data["datasources.yaml"] = strings.Replace(cm.Data["datasources.yaml"], "url: http://api:8081", "url: http://api:8081/analyze", 1)
		}, "want http://<api service>:<port>"},
		{"no token with read tokens", "overlays/api-keys", func(s *Set) {
			cm := datasources(s)
			cm.Data["datasources.yaml"] = mustRead(t, filepath.Join(repoRoot(t), "deployments/k8s/base/monitoring/grafana/datasources.yaml"))
		}, "the api requires read tokens"},
		{"token inline", "overlays/api-keys", func(s *Set) {
			cm := datasources(s)
			cm.Data["datasources.yaml"] = strings.Replace(cm.Data["datasources.yaml"], "$__file{/etc/grafana/pulse-token/grafana-token}", "abc", 1)
		}, "must be read from a Secret file"},
		{"token file not mounted", "overlays/api-keys", func(s *Set) {
			c := grafana(s)
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == "/etc/grafana/pulse-token" })
		}, "/etc/grafana/pulse-token/grafana-token is not a file of a mounted Secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fresh(t, tt.rel)
			tt.mutate(s)
			ps := CheckSet(s, secrets).Problems
			if !strings.Contains(strings.Join(ps, "\n"), tt.want) {
				t.Errorf("problems %q, want one containing %q", ps, tt.want)
			}
		})
	}
}

// The api-keys component ships its own datasources.yaml (a ConfigMap
// generator merge replaces the whole key): it must be the base's plus the
// Pulse API datasource's token, nothing else.
func TestComponentDatasourcesFollowBase(t *testing.T) {
	root := repoRoot(t)
	read := func(p string) GrafanaProvisioning {
		var gp GrafanaProvisioning
		if err := yaml.UnmarshalStrict([]byte(mustRead(t, filepath.Join(root, p))), &gp); err != nil {
			t.Fatal(err)
		}
		return gp
	}
	base := read("deployments/k8s/base/monitoring/grafana/datasources.yaml")
	comp := read("deployments/k8s/components/api-keys/datasources.yaml")
	found := false
	for i, ds := range comp.Datasources {
		if ds.Type != InfinityType {
			continue
		}
		if ds.JSONData["auth_method"] == "bearerToken" && ds.SecureJSONData["bearerToken"] != "" {
			found = true
			delete(comp.Datasources[i].JSONData, "auth_method")
			comp.Datasources[i].SecureJSONData = nil
		}
	}
	if !found {
		t.Error("the component's Pulse API datasource sends no bearer token")
	}
	if !reflect.DeepEqual(base, comp) {
		t.Errorf("the component's datasources.yaml differs from the base's beyond the token:\nbase: %+v\ncomponent: %+v", base, comp)
	}
}
