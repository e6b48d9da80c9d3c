package check

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pulse-iot/pulse/internal/config"
)

// InfinityType is the plugin of the Pulse API datasource: JSON from the
// api, for the per-signal and per-tag panels Prometheus cannot feed (it
// carries no signal, tag or device label).
const InfinityType = "yesoreyeram-infinity-datasource"

// apiPaths are the api's GET endpoints a dashboard may read through the
// Pulse API datasource.
var apiPaths = []string{"/signals", "/tags", "/analyze", "/devices", "/anomalies", "/alerts"}

// fileRef is Grafana's provisioning reference to a file's content.
var fileRef = regexp.MustCompile(`^\$__file\{([^}]+)\}$`)

// GrafanaDatasource is one datasource of a provisioning file.
type GrafanaDatasource struct {
	Name           string            `json:"name"`
	UID            string            `json:"uid"`
	Type           string            `json:"type"`
	Access         string            `json:"access"`
	URL            string            `json:"url"`
	IsDefault      bool              `json:"isDefault"`
	Editable       bool              `json:"editable"`
	JSONData       map[string]any    `json:"jsonData"`
	SecureJSONData map[string]string `json:"secureJsonData"`
}

// apiDatasource checks the Pulse API datasource: the plugin is installed
// before Grafana starts, the URL is the api's Service, Grafana's pods may
// reach the api's pods on it, and, when the api requires read tokens,
// the datasource sends one read from a file of a mounted Secret.
func (c *checker) apiDatasource(spec *corev1.PodSpec, ctr *corev1.Container, ds GrafanaDatasource) {
	installed := false
	for _, e := range ctr.Env {
		if e.Name == "GF_PLUGINS_PREINSTALL_SYNC" || e.Name == "GF_PLUGINS_PREINSTALL" {
			for _, p := range strings.Split(e.Value, ",") {
				id, _, _ := strings.Cut(strings.TrimSpace(p), "@")
				installed = installed || id == InfinityType
			}
		}
	}
	if !installed {
		c.p.add("grafana datasource %s: plugin %s is not in GF_PLUGINS_PREINSTALL_SYNC", ds.Name, InfinityType)
	}
	u, err := url.Parse(ds.URL)
	if err != nil || u.Scheme != "http" || u.Port() == "" || u.Path != "" && u.Path != "/" {
		c.p.add("grafana datasource %s: want http://<api service>:<port>, got %q", ds.Name, ds.URL)
		return
	}
	svc, err := c.serviceAddr(u.Host)
	if err != nil {
		c.p.add("grafana datasource %s: %v", ds.Name, err)
		return
	}
	api, ok := findWorkload(c.s, "Deployment", c.ns, config.API)
	if !ok || len(svc.Spec.Selector) == 0 || !selectorMatches(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, api.Template.Labels) {
		c.p.add("grafana datasource %s: Service %s does not select the api's pods", ds.Name, svc.Name)
		return
	}
	grafana, _ := findWorkload(c.s, "Deployment", c.ns, "grafana")
	for _, sp := range svc.Spec.Ports {
		if u.Port() != strconv.Itoa(int(sp.Port)) {
			continue
		}
		target := sp.TargetPort
		if n, ok := podPort(api.Template, &target); !ok {
			c.p.add("grafana datasource %s: Service %s port %d targets no port of the api", ds.Name, svc.Name, sp.Port)
		} else if !reaches(c.s, grafana, api, n) {
			c.p.add("NetworkPolicies: %s cannot reach %s on port %d (grafana datasource %s)", grafana.ID(), api.ID(), n, ds.Name)
		}
	}
	token := ds.SecureJSONData["bearerToken"]
	if !apiNeedsReadToken(c.s, c.ns) {
		if token != "" {
			c.p.add("grafana datasource %s: sends a bearer token, but the api has no read tokens", ds.Name)
		}
		return
	}
	m := fileRef.FindStringSubmatch(token)
	switch {
	case ds.JSONData["auth_method"] != "bearerToken" || token == "":
		c.p.add("grafana datasource %s: the api requires read tokens: want jsonData.auth_method bearerToken and secureJsonData.bearerToken", ds.Name)
	case m == nil:
		c.p.add("grafana datasource %s: the token must be read from a Secret file ($__file{path}), not written here", ds.Name)
	default:
		v, k, err := mountedFile(spec, ctr, m[1])
		if err != nil || v == nil || v.Secret == nil {
			c.p.add("grafana datasource %s: %s is not a file of a mounted Secret (%v)", ds.Name, m[1], err)
		} else if !c.secretKey(v.Secret.SecretName, k) {
			c.p.add("grafana datasource %s: Secret %s has no key %s", ds.Name, v.Secret.SecretName, k)
		}
	}
}

// apiNeedsReadToken reports whether the api is given read tokens
// (READ_TOKENS or READ_TOKENS_FILE, in its env or its ConfigMaps).
func apiNeedsReadToken(s *Set, ns string) bool {
	ctr := namedContainer(s.Deployment(ns, config.API), config.API)
	if ctr == nil {
		return false
	}
	set := func(name, v string) bool { return (name == "READ_TOKENS" || name == "READ_TOKENS_FILE") && v != "" }
	for _, e := range ctr.Env {
		if set(e.Name, e.Value) || (e.Name == "READ_TOKENS" || e.Name == "READ_TOKENS_FILE") && e.ValueFrom != nil {
			return true
		}
	}
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		if cm := s.ConfigMap(ns, ef.ConfigMapRef.Name); cm != nil {
			for k, v := range cm.Data {
				if set(ef.Prefix+k, v) {
					return true
				}
			}
		}
	}
	return false
}

// DashboardAPIQuery is a panel's or variable's query of the Pulse API
// datasource.
type DashboardAPIQuery struct {
	Where string
	URL   string
}

// APIQueries lists the dashboard's queries of the Pulse API datasource:
// its panels' targets and its query variables.
func APIQueries(d *Dashboard) []DashboardAPIQuery {
	var out []DashboardAPIQuery
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if isAPI(t.Datasource) || t.Datasource == nil && isAPI(p.Datasource) {
				out = append(out, DashboardAPIQuery{"dashboard " + d.UID + " panel " + p.Title + " " + t.RefID, t.URL})
			}
		}
	}
	for _, v := range d.Templating.List {
		if isAPI(v.Datasource) && v.Query.InfinityQuery != nil {
			out = append(out, DashboardAPIQuery{"dashboard " + d.UID + " variable " + v.Name, v.Query.InfinityQuery.URL})
		}
	}
	return out
}

func isAPI(ds *Datasource) bool { return ds != nil && ds.Type == InfinityType }

// isPrometheus reports whether a query of this datasource (nil: the
// default, Prometheus) is PromQL.
func isPrometheus(ds *Datasource) bool { return ds == nil || ds.Type == "" || ds.Type == "prometheus" }

// CheckAPIQuery verifies that a query reads one of the api's GET
// endpoints by path (the datasource's URL goes before it), with Grafana
// variables only among those defined.
func CheckAPIQuery(q DashboardAPIQuery, vars map[string]bool) []string {
	var p Problems
	u, err := url.Parse(strings.NewReplacer("${", "", "}", "").Replace(q.URL))
	if err != nil || u.Scheme != "" || u.Host != "" || !hasString(apiPaths, u.Path) {
		p.add("%s: %q is not a path of the api's %v", q.Where, q.URL, apiPaths)
	}
	for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(q.URL, -1) {
		if !vars[m[1]] {
			p.add("%s: %q uses $%s, which the dashboard does not define", q.Where, q.URL, m[1])
		}
	}
	return p
}
