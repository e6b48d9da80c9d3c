package check

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

func TestNetworkPolicies(t *testing.T) {
	for _, r := range renderAll(t) {
		if r.Err != nil || len(r.Errs) > 0 {
			continue // TestKustomizeRenders and TestStrictDecode report it
		}
		reportProblems(t, r.K.Rel, CheckNetworkPolicies(r.Set))
	}
}

// fresh decodes the rendered kustomization rel again, for a mutation.
func fresh(t *testing.T, rel string) *Set {
	t.Helper()
	s, errs := DecodeStrict(render(t, rel).YAML)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return s
}

func policy(t *testing.T, s *Set, name string) *networkingv1.NetworkPolicy {
	t.Helper()
	for _, np := range s.NetworkPolicies() {
		if np.Name == name {
			return np
		}
	}
	t.Fatalf("no NetworkPolicy %s", name)
	return nil
}

func withoutPolicy(s *Set, name string) {
	var kept []Object
	for _, o := range s.Objects {
		if np, ok := o.Obj.(*networkingv1.NetworkPolicy); !ok || np.Name != name {
			kept = append(kept, o)
		}
	}
	s.Objects = kept
}

// The checks catch real mistakes: each mutation of the rendered base is
// reported.
func TestNetworkPolicyChecksCatchMistakes(t *testing.T) {
	if ps := CheckNetworkPolicies(fresh(t, "base")); len(ps) > 0 {
		t.Skip("base has problems; TestNetworkPolicies reports them")
	}
	admin := intstr.FromString("admin")
	undeclared := intstr.FromInt32(9999)
	tests := []struct {
		name   string
		mutate func(t *testing.T, s *Set)
		want   string
	}{
		{"analyzer open to every pod", func(t *testing.T, s *Set) {
			policy(t, s, "analyzer").Spec.Ingress[0].From[0].PodSelector = &metav1.LabelSelector{}
		}, "admits to the analyzer a peer other than Prometheus's pods"},
		{"analyzer open to a namespace", func(t *testing.T, s *Set) {
			np := policy(t, s, "analyzer")
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}})
		}, "admits to the analyzer a peer other than Prometheus's pods"},
		{"every port of the analyzer", func(t *testing.T, s *Set) {
			policy(t, s, "analyzer").Spec.Ingress[0].Ports = nil
		}, "admits every port"},
		{"an admin port admitted", func(t *testing.T, s *Set) {
			d := s.Deployment("pulse", "ingest")
			d.Spec.Template.Spec.Containers[0].Ports = append(d.Spec.Template.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "admin", ContainerPort: 6060})
			np := policy(t, s, "ingest")
			np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: &admin})
		}, "admits port 6060 of Deployment pulse/ingest, not its service and metrics port 8080"},
		{"an undeclared port", func(t *testing.T, s *Set) {
			np := policy(t, s, "api")
			np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: &undeclared})
		}, "admits port 9999, which Deployment pulse/api does not declare"},
		{"a rule without peers", func(t *testing.T, s *Set) {
			policy(t, s, "ingest").Spec.Ingress[0].From = nil
		}, "admits every peer"},
		{"Prometheus shut out of the api", func(t *testing.T, s *Set) {
			np := policy(t, s, "api")
			np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:1] // the ingress controller only
		}, "Prometheus cannot reach Deployment pulse/api's scrape port 8081"},
		{"Prometheus shut out of the redis exporter", func(t *testing.T, s *Set) {
			np := policy(t, s, "redis")
			np.Spec.Ingress = np.Spec.Ingress[:1]
		}, "Prometheus cannot reach StatefulSet pulse/redis's scrape port 9121"},
		{"analyzer without a policy", func(t *testing.T, s *Set) { withoutPolicy(s, "analyzer") }, "Deployment pulse/analyzer is selected by 0 NetworkPolicies"},
		{"egress only", func(t *testing.T, s *Set) {
			policy(t, s, "redis").Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		}, "does not restrict ingress to StatefulSet pulse/redis"},
		{"Alertmanager without a policy", func(t *testing.T, s *Set) { withoutPolicy(s, "alertmanager") }, "Deployment pulse/alertmanager is selected by 0 NetworkPolicies"},
		{"Alertmanager open to every pod", func(t *testing.T, s *Set) {
			policy(t, s, "alertmanager").Spec.Ingress[0].From[0].PodSelector = &metav1.LabelSelector{}
		}, "admits to the alertmanager a peer other than Prometheus's and the analyzer's pods"},
		{"Alertmanager open to the api", func(t *testing.T, s *Set) {
			np := policy(t, s, "alertmanager")
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "api"}}})
		}, "admits to the alertmanager a peer other than"},
		{"every port of Alertmanager", func(t *testing.T, s *Set) {
			policy(t, s, "alertmanager").Spec.Ingress[0].Ports = nil
		}, "NetworkPolicy alertmanager rule 0 admits every port"},
		{"analyzer shut out of Alertmanager", func(t *testing.T, s *Set) {
			np := policy(t, s, "alertmanager")
			np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:1] // Prometheus only
		}, "Deployment pulse/analyzer cannot reach Deployment pulse/alertmanager on port 9093"},
		{"Alertmanager admits the analyzer on another port", func(t *testing.T, s *Set) {
			np := policy(t, s, "alertmanager")
			np.Spec.Ingress = append(np.Spec.Ingress, *np.Spec.Ingress[0].DeepCopy())
			np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:1]
			np.Spec.Ingress[1].From = np.Spec.Ingress[1].From[1:]
			other := intstr.FromInt32(9094)
			np.Spec.Ingress[1].Ports[0].Port = &other
		}, "Deployment pulse/analyzer cannot reach Deployment pulse/alertmanager on port 9093"},
		{"Prometheus shut out of Alertmanager", func(t *testing.T, s *Set) {
			np := policy(t, s, "alertmanager")
			np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[1:] // the analyzer only
		}, "Deployment pulse/prometheus cannot reach Deployment pulse/alertmanager on port 9093"},
		{"analyzer egress denied", func(t *testing.T, s *Set) {
			s.Objects = append(s.Objects, Object{Obj: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "analyzer-egress", Namespace: "pulse"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "analyzer"}},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				},
			}})
		}, "Deployment pulse/analyzer cannot reach Deployment pulse/alertmanager on port 9093"},
		{"analyzer egress to Redis only", func(t *testing.T, s *Set) {
			s.Objects = append(s.Objects, Object{Obj: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "analyzer-egress", Namespace: "pulse"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "analyzer"}},
					Egress: []networkingv1.NetworkPolicyEgressRule{{
						To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "redis"}}}},
					}},
				},
			}})
		}, "Deployment pulse/analyzer cannot reach Deployment pulse/alertmanager on port 9093"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fresh(t, "base")
			tt.mutate(t, s)
			ps := CheckNetworkPolicies(s)
			if !strings.Contains(strings.Join(ps, "\n"), tt.want) {
				t.Errorf("problems %q, want one containing %q", ps, tt.want)
			}
		})
	}
}

// secretTemplateValues reads the stringData of the Secret template name.
func secretTemplateValues(t *testing.T, name string) map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deployments", "k8s", "secrets", "*.example.yaml"))
	for _, f := range files {
		set, errs := DecodeStrict([]byte(mustRead(t, f)))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		for _, o := range set.Objects {
			if sec, ok := o.Obj.(*corev1.Secret); ok && sec.Name == name {
				return sec.StringData
			}
		}
	}
	t.Fatalf("no template of Secret %s", name)
	return nil
}

// With read tokens, every service's metrics need one and Prometheus sends
// one from a Secret, one of the read tokens; its configuration loads.
func TestScrapeAuth(t *testing.T) {
	guardedSomewhere := false
	for _, r := range renderAll(t) {
		if r.Err != nil || len(r.Errs) > 0 {
			continue
		}
		a, ps := CheckScrapeAuth(r.Set)
		reportProblems(t, r.K.Rel, ps)
		if len(a.Guarded) == 0 {
			continue
		}
		guardedSomewhere = true
		if a.Secret == "" || a.TokenKey == "" {
			t.Errorf("%s: read tokens from %q key %q, Prometheus's token from key %q: want both from one Secret", r.K.Rel, a.Secret, a.ReadTokensKey, a.TokenKey)
			continue
		}
		vals := secretTemplateValues(t, a.Secret)
		token := strings.TrimSpace(vals[a.TokenKey])
		if token == "" || !hasString(strings.Fields(vals[a.ReadTokensKey]), token) {
			t.Errorf("%s: template of Secret %s: %s %q is not one of %s %q", r.K.Rel, a.Secret, a.TokenKey, token, a.ReadTokensKey, vals[a.ReadTokensKey])
		}
		cm := r.Set.ConfigMapByPrefix("pulse", "prometheus-config")
		if cm == nil {
			t.Fatalf("%s: no prometheus-config", r.K.Rel)
		}
		// promtool at the deployed release checks that the token file
		// exists: point it at a stand-in beside the copy.
		dir := writeConfigMap(t, cm)
		cfgFile := filepath.Join(dir, "prometheus.yml")
		raw, err := os.ReadFile(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		stand := filepath.Join(dir, "token")
		if err := os.WriteFile(stand, []byte("t"), 0o600); err != nil {
			t.Fatal(err)
		}
		raw = regexp.MustCompile(`(credentials_file:\s*)\S+`).ReplaceAll(raw, []byte("${1}"+stand))
		if err := os.WriteFile(cfgFile, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		promtool, _ := deployedTool(t, Promtool)
		t.Log(run(t, promtool, "check", "config", cfgFile))
	}
	if !guardedSomewhere {
		t.Error("no kustomization sets read tokens: the api-keys overlay should")
	}
}

func TestScrapeAuthChecksCatchMistakes(t *testing.T) {
	if _, ps := CheckScrapeAuth(fresh(t, "overlays/api-keys")); len(ps) > 0 {
		t.Skip("overlays/api-keys has problems; TestScrapeAuth reports them")
	}
	baseCfg := fresh(t, "base").ConfigMapByPrefix("pulse", "prometheus-config").Data["prometheus.yml"]
	tests := []struct {
		name   string
		mutate func(s *Set)
		want   string
	}{
		{"ingest's metrics left open", func(s *Set) {
			c := namedContainer(s.Deployment("pulse", "ingest"), "ingest")
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "READ_TOKENS_FILE" })
		}, "read tokens guard the metrics of [analyzer api] only"},
		{"Prometheus without the token", func(s *Set) {
			s.ConfigMapByPrefix("pulse", "prometheus-config").Data["prometheus.yml"] = baseCfg
		}, "scrapes the pods without a token"},
		{"token file not mounted", func(s *Set) {
			c := namedContainer(s.Deployment("pulse", "prometheus"), "prometheus")
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.MountPath == "/etc/prometheus-secrets"
			})
		}, "is not a mounted Secret key"},
		{"token inline", func(s *Set) {
			cm := s.ConfigMapByPrefix("pulse", "prometheus-config")
			cm.Data["prometheus.yml"] = strings.Replace(cm.Data["prometheus.yml"], "credentials_file: /etc/prometheus-secrets/prometheus-token", "credentials: abc", 1)
		}, "a token inline in a ConfigMap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fresh(t, "overlays/api-keys")
			tt.mutate(s)
			_, ps := CheckScrapeAuth(s)
			if !strings.Contains(strings.Join(ps, "\n"), tt.want) {
				t.Errorf("problems %q, want one containing %q", ps, tt.want)
			}
		})
	}
}

// The api-keys component ships its own prometheus.yml (a ConfigMap
// generator merge replaces the whole key): it must be the base's plus the
// authorization block, nothing else.
func TestComponentPrometheusConfigFollowsBase(t *testing.T) {
	root := repoRoot(t)
	read := func(p string) map[string]any {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(mustRead(t, filepath.Join(root, p))), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := read("deployments/k8s/base/monitoring/prometheus/prometheus.yml")
	comp := read("deployments/k8s/components/api-keys/prometheus.yml")
	found := false
	for _, sc := range comp["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		if _, ok := sc["authorization"]; ok {
			found = true
			delete(sc, "authorization")
		}
	}
	if !found {
		t.Error("the component's prometheus.yml has no authorization block")
	}
	if !reflect.DeepEqual(base, comp) {
		b, _ := yaml.Marshal(base)
		c, _ := yaml.Marshal(comp)
		t.Errorf("the component's prometheus.yml differs from the base's beyond authorization:\nbase:\n%s\ncomponent:\n%s", b, c)
	}
}

// reaches follows Kubernetes's rules: ingress and egress policies must
// both allow a connection, unselected pods are open, named ports resolve
// on the destination.
func TestReaches(t *testing.T) {
	if ps := CheckNetworkPolicies(fresh(t, "base")); len(ps) > 0 {
		t.Skip("base has problems; TestNetworkPolicies reports them")
	}
	egress := func(to map[string]string, port intstr.IntOrString) func(s *Set) {
		return func(s *Set) {
			s.Objects = append(s.Objects, Object{Obj: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "analyzer-egress", Namespace: "pulse"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "analyzer"}},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
					Egress: []networkingv1.NetworkPolicyEgressRule{{
						To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: to}}},
						Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
					}},
				},
			}})
		}
	}
	am := map[string]string{"app.kubernetes.io/name": "alertmanager"}
	tests := []struct {
		name     string
		mutate   func(s *Set)
		from, to string
		port     int32
		want     bool
	}{
		{"analyzer to Alertmanager", nil, "analyzer", "alertmanager", 9093, true},
		{"Prometheus to Alertmanager", nil, "prometheus", "alertmanager", 9093, true},
		{"api to Alertmanager", nil, "api", "alertmanager", 9093, false},
		{"analyzer to another port of Alertmanager", nil, "analyzer", "alertmanager", 9094, false},
		{"analyzer to Grafana (no policy)", nil, "analyzer", "grafana", 3000, true},
		{"api to the analyzer", nil, "api", "analyzer", 8082, false},
		{"egress allowed by named port", egress(am, intstr.FromString("http")), "analyzer", "alertmanager", 9093, true},
		{"egress allowed by number", egress(am, intstr.FromInt32(9093)), "analyzer", "alertmanager", 9093, true},
		{"egress to another port", egress(am, intstr.FromInt32(9094)), "analyzer", "alertmanager", 9093, false},
		{"egress to Redis only", egress(map[string]string{"app.kubernetes.io/name": "redis"}, intstr.FromString("redis")), "analyzer", "alertmanager", 9093, false},
		{"from a namespace selector", func(s *Set) {
			np := policy(t, s, "alertmanager")
			np.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "pulse"}}}}
		}, "api", "alertmanager", 9093, true},
		{"from another namespace", func(s *Set) {
			np := policy(t, s, "alertmanager")
			np.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}}
		}, "analyzer", "alertmanager", 9093, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fresh(t, "base")
			if tt.mutate != nil {
				tt.mutate(s)
			}
			from, ok1 := findWorkload(s, "Deployment", "pulse", tt.from)
			to, ok2 := findWorkload(s, "Deployment", "pulse", tt.to)
			if !ok1 || !ok2 {
				t.Fatalf("no Deployment %s or %s", tt.from, tt.to)
			}
			if got := reaches(s, from, to, tt.port); got != tt.want {
				t.Errorf("reaches(%s, %s, %d) = %v, want %v", tt.from, tt.to, tt.port, got, tt.want)
			}
		})
	}
}
