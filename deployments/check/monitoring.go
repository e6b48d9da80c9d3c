package check

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// ParseRules decodes a rule file strictly.
func ParseRules(data []byte) (*RuleFile, error) {
	var rf RuleFile
	if err := yaml.UnmarshalStrict(data, &rf); err != nil {
		return nil, err
	}
	return &rf, nil
}

// Dashboard is the part of a Grafana dashboard the checks read.
type Dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Variable is a dashboard variable; Query is read for query variables of
// the Pulse API datasource.
type Variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Datasource *Datasource `json:"datasource"`
	Query      struct {
		InfinityQuery *struct {
			URL          string `json:"url"`
			RootSelector string `json:"root_selector"`
		} `json:"infinityQuery"`
	} `json:"query"`
}

// UnmarshalJSON takes a variable whose query is a string (Prometheus's,
// custom ones) as well as an object (the Infinity plugin's).
func (v *Variable) UnmarshalJSON(b []byte) error {
	type plain Variable
	var raw struct {
		plain
		Query json.RawMessage `json:"query"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*v = Variable(raw.plain)
	if len(raw.Query) > 0 && raw.Query[0] == '{' {
		return json.Unmarshal(raw.Query, &v.Query)
	}
	return nil
}

// Panel is a Grafana panel (rows nest panels).
type Panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *Datasource    `json:"datasource"`
	Targets    []Target       `json:"targets"`
	Panels     []Panel        `json:"panels"`
	GridPos    map[string]int `json:"gridPos"`
}

// Target is one query of a panel: PromQL (Expr) or, of the Pulse API
// datasource, an api path (URL).
type Target struct {
	RefID        string      `json:"refId"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
	Datasource   *Datasource `json:"datasource"`
	URL          string      `json:"url"`
}

// Datasource references a Grafana datasource.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// ParseDashboard decodes a dashboard JSON.
func ParseDashboard(data []byte) (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// AllPanels flattens rows.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// GrafanaProvisioning is a datasources or dashboards provisioning file.
type GrafanaProvisioning struct {
	APIVersion  int                 `json:"apiVersion"`
	Datasources []GrafanaDatasource `json:"datasources"`
	Providers   []struct {
		Name                  string `json:"name"`
		Folder                string `json:"folder"`
		Type                  string `json:"type"`
		DisableDeletion       bool   `json:"disableDeletion"`
		AllowUIUpdates        bool   `json:"allowUiUpdates"`
		UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
		Options               struct {
			Path string `json:"path"`
		} `json:"options"`
	} `json:"providers"`
}

// PromQLExpr is one PromQL expression found in a file.
type PromQLExpr struct {
	Where string
	Expr  string
}

// RuleExprs lists the expressions of a rule file.
func RuleExprs(rf *RuleFile) []PromQLExpr {
	var out []PromQLExpr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out = append(out, PromQLExpr{fmt.Sprintf("rule %s%s", r.Alert, r.Record), r.Expr})
		}
	}
	return out
}

// DashboardExprs lists the PromQL expressions of a dashboard, Grafana
// variables expanded: the targets of Prometheus (a target's datasource,
// else its panel's; none is the default, Prometheus).
func DashboardExprs(d *Dashboard) []PromQLExpr {
	var out []PromQLExpr
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			ds := t.Datasource
			if ds == nil {
				ds = p.Datasource
			}
			if !isPrometheus(ds) {
				continue
			}
			out = append(out, PromQLExpr{fmt.Sprintf("dashboard %s panel %q %s", d.UID, p.Title, t.RefID), ExpandGrafana(t.Expr)})
		}
	}
	return out
}

// container finds a container by name in a Deployment of the set.
func (c *checker) container(deploy, name string) (*corev1.PodSpec, *corev1.Container) {
	d := c.s.Deployment(c.ns, deploy)
	if d == nil {
		return nil, nil
	}
	return &d.Spec.Template.Spec, containerNamed(&d.Spec.Template.Spec, name)
}

// mountedFile finds what backs the file p inside a container: the volume
// mounted at dir(p) and the key that becomes base(p).
func mountedFile(spec *corev1.PodSpec, ctr *corev1.Container, p string) (vol *corev1.Volume, key string, err error) {
	for _, vm := range ctr.VolumeMounts {
		if vm.MountPath != path.Dir(p) {
			continue
		}
		for i := range spec.Volumes {
			v := &spec.Volumes[i]
			if v.Name != vm.Name {
				continue
			}
			var items []corev1.KeyToPath
			switch {
			case v.ConfigMap != nil:
				items = v.ConfigMap.Items
			case v.Secret != nil:
				items = v.Secret.Items
			default:
				return v, "", nil
			}
			if len(items) == 0 {
				return v, path.Base(p), nil
			}
			for _, it := range items {
				if it.Path == path.Base(p) {
					return v, it.Key, nil
				}
			}
			return v, "", fmt.Errorf("volume %s has no item for %s", v.Name, path.Base(p))
		}
	}
	return nil, "", fmt.Errorf("%s is not inside a mounted volume", p)
}

func flagValue(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func (c *checker) monitoring() {
	c.prometheusWiring()
	c.alertmanagerWiring()
	c.alertDelivery()
	c.grafanaWiring()
}

func (c *checker) configFile(deploy, ctrName, p string) (*corev1.ConfigMap, string) {
	spec, ctr := c.container(deploy, ctrName)
	if ctr == nil {
		c.p.add("Deployment %s: no container %s", deploy, ctrName)
		return nil, ""
	}
	v, key, err := mountedFile(spec, ctr, p)
	if err != nil || v == nil || v.ConfigMap == nil {
		c.p.add("Deployment %s: %s does not come from a ConfigMap volume (%v)", deploy, p, err)
		return nil, ""
	}
	cm := c.s.ConfigMap(c.ns, v.ConfigMap.Name)
	if cm == nil {
		return nil, ""
	}
	if _, ok := cm.Data[key]; !ok {
		c.p.add("Deployment %s: ConfigMap %s has no key %s for %s", deploy, cm.Name, key, p)
		return nil, ""
	}
	return cm, key
}

func (c *checker) prometheusWiring() {
	_, ctr := c.container("prometheus", "prometheus")
	if ctr == nil {
		c.p.add("Deployment prometheus with container prometheus is missing")
		return
	}
	cfgPath := flagValue(ctr.Args, "--config.file")
	cm, key := c.configFile("prometheus", "prometheus", cfgPath)
	if cm == nil {
		return
	}
	var cfg struct {
		RuleFiles []string `json:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `json:"targets"`
				} `json:"static_configs"`
			} `json:"alertmanagers"`
		} `json:"alerting"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data[key]), &cfg); err != nil {
		c.p.add("prometheus.yml: %v", err)
		return
	}
	for _, rf := range cfg.RuleFiles {
		p := rf
		if !path.IsAbs(p) {
			p = path.Join(path.Dir(cfgPath), p)
		}
		if _, ok := cm.Data[path.Base(p)]; !ok || path.Dir(p) != path.Dir(cfgPath) {
			c.p.add("prometheus.yml: rule file %s is not in ConfigMap %s", rf, cm.Name)
		}
	}
	n := 0
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			for _, t := range sc.Targets {
				n++
				e, err := resolveEndpoint(c.s, c.ns, t)
				if err != nil {
					c.p.add("prometheus.yml: alertmanager target %s: %v", t, err)
					continue
				}
				c.promAlertmanagers = append(c.promAlertmanagers, e.Name)
			}
		}
	}
	if n == 0 {
		c.p.add("prometheus.yml: no Alertmanager configured")
	}
	slices.Sort(c.promAlertmanagers)
	// Pod discovery needs list/watch on pods through the pod's ServiceAccount.
	d := c.s.Deployment(c.ns, "prometheus")
	sa := d.Spec.Template.Spec.ServiceAccountName
	if d.Spec.Template.Spec.AutomountServiceAccountToken != nil && !*d.Spec.Template.Spec.AutomountServiceAccountToken {
		c.p.add("Deployment prometheus: needs its ServiceAccount token for pod discovery")
	}
	granted := false
	for _, rb := range c.s.RoleBindings() {
		bound := false
		for _, s := range rb.Subjects {
			bound = bound || (s.Kind == "ServiceAccount" && s.Name == sa)
		}
		if !bound {
			continue
		}
		for _, r := range c.s.Roles() {
			if r.Name != rb.RoleRef.Name {
				continue
			}
			for _, rule := range r.Rules {
				if contains(rule.Resources, "pods") && contains(rule.Verbs, "list") && contains(rule.Verbs, "watch") {
					granted = true
				}
			}
		}
	}
	if !granted {
		c.p.add("Deployment prometheus: ServiceAccount %q may not list/watch pods", sa)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *checker) alertmanagerWiring() {
	spec, ctr := c.container("alertmanager", "alertmanager")
	if ctr == nil {
		c.p.add("Deployment alertmanager with container alertmanager is missing")
		return
	}
	cm, key := c.configFile("alertmanager", "alertmanager", flagValue(ctr.Args, "--config.file"))
	if cm == nil {
		return
	}
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data[key]), &raw); err != nil {
		c.p.add("alertmanager.yml: %v", err)
		return
	}
	var files []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				switch k {
				case "smtp_auth_password", "auth_password":
					c.p.add("alertmanager.yml: %s is set inline: the password must come from a Secret file", k)
				case "smtp_auth_password_file", "auth_password_file":
					if s, ok := val.(string); ok {
						files = append(files, s)
					}
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(raw)
	if len(files) == 0 {
		c.p.add("alertmanager.yml: no smtp_auth_password_file: the SMTP password must be read from a mounted Secret")
	}
	hasEmail := strings.Contains(cm.Data[key], "email_configs")
	if !hasEmail {
		c.p.add("alertmanager.yml: no email (SMTP) receiver")
	}
	for _, f := range files {
		v, k, err := mountedFile(spec, ctr, f)
		if err != nil || v == nil || v.Secret == nil {
			c.p.add("Deployment alertmanager: %s is not a file of a mounted Secret (%v)", f, err)
			continue
		}
		if !c.secretKey(v.Secret.SecretName, k) {
			c.p.add("Deployment alertmanager: Secret %s has no key %s", v.Secret.SecretName, k)
		}
	}
	for _, a := range ctr.Args {
		if strings.Contains(a, "apk ") || strings.Contains(a, "apt-get") || strings.Contains(a, "wget ") || strings.Contains(a, "curl ") {
			c.p.add("Deployment alertmanager: downloads at start (%q)", a)
		}
	}
	if len(ctr.Command) > 0 {
		c.p.add("Deployment alertmanager: overrides the image command %v (no start-up scripting)", ctr.Command)
	}
}

func (c *checker) grafanaWiring() {
	spec, ctr := c.container("grafana", "grafana")
	if ctr == nil {
		c.p.add("Deployment grafana with container grafana is missing")
		return
	}
	prov := "/etc/grafana/provisioning"
	for _, e := range ctr.Env {
		if e.Name == "GF_PATHS_PROVISIONING" {
			prov = e.Value
		}
		if strings.HasSuffix(e.Name, "__FILE") {
			v, k, err := mountedFile(spec, ctr, e.Value)
			if err != nil || v == nil || v.Secret == nil {
				c.p.add("Deployment grafana: %s=%s is not a file of a mounted Secret (%v)", e.Name, e.Value, err)
			} else if !c.secretKey(v.Secret.SecretName, k) {
				c.p.add("Deployment grafana: Secret %s has no key %s", v.Secret.SecretName, k)
			}
		}
		if strings.Contains(e.Name, "PASSWORD") && !strings.HasSuffix(e.Name, "__FILE") {
			c.p.add("Deployment grafana: %s must be read from a Secret file (__FILE)", e.Name)
		}
	}
	provFiles := func(sub string) []GrafanaProvisioning {
		var out []GrafanaProvisioning
		for _, vm := range ctr.VolumeMounts {
			if vm.MountPath != prov+"/"+sub {
				continue
			}
			for _, v := range spec.Volumes {
				if v.Name == vm.Name && v.ConfigMap != nil {
					if cm := c.s.ConfigMap(c.ns, v.ConfigMap.Name); cm != nil {
						for k, data := range cm.Data {
							var gp GrafanaProvisioning
							if err := yaml.UnmarshalStrict([]byte(data), &gp); err != nil {
								c.p.add("grafana %s/%s: %v", sub, k, err)
							}
							out = append(out, gp)
						}
					}
				}
			}
		}
		if len(out) == 0 {
			c.p.add("Deployment grafana: nothing provisioned in %s/%s", prov, sub)
		}
		return out
	}
	uids := map[string]bool{}
	for _, gp := range provFiles("datasources") {
		for _, ds := range gp.Datasources {
			uids[ds.UID] = true
			if ds.Type == InfinityType {
				c.apiDatasource(spec, ctr, ds)
				continue
			}
			u, err := url.Parse(ds.URL)
			if err != nil || ds.Type != "prometheus" {
				c.p.add("grafana datasource %s: want a prometheus URL, or the api's through %s", ds.Name, InfinityType)
				continue
			}
			if _, err := c.serviceAddr(u.Host); err != nil {
				c.p.add("grafana datasource %s: %v", ds.Name, err)
			}
		}
	}
	var dashboards int
	for _, gp := range provFiles("dashboards") {
		for _, p := range gp.Providers {
			var cm *corev1.ConfigMap
			for _, vm := range ctr.VolumeMounts {
				if vm.MountPath != p.Options.Path {
					continue
				}
				for _, v := range spec.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil {
						cm = c.s.ConfigMap(c.ns, v.ConfigMap.Name)
					}
				}
			}
			if cm == nil {
				c.p.add("grafana dashboard provider %s: path %s is not a mounted ConfigMap", p.Name, p.Options.Path)
				continue
			}
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				d, err := ParseDashboard([]byte(cm.Data[k]))
				if err != nil {
					c.p.add("dashboard %s: %v", k, err)
					continue
				}
				dashboards++
				for _, v := range d.Templating.List {
					if v.Datasource != nil && !uids[v.Datasource.UID] {
						c.p.add("dashboard %s variable %s: datasource uid %q is not provisioned", k, v.Name, v.Datasource.UID)
					}
				}
				for _, pn := range d.AllPanels() {
					for _, ds := range []*Datasource{pn.Datasource} {
						if ds != nil && !uids[ds.UID] {
							c.p.add("dashboard %s panel %q: datasource uid %q is not provisioned", k, pn.Title, ds.UID)
						}
					}
					for _, t := range pn.Targets {
						if t.Datasource != nil && !uids[t.Datasource.UID] {
							c.p.add("dashboard %s panel %q: datasource uid %q is not provisioned", k, pn.Title, t.Datasource.UID)
						}
					}
				}
			}
		}
	}
	if dashboards == 0 {
		c.p.add("grafana: no dashboards provisioned")
	}
}
