package check

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The base posts device alerts to the Alertmanager it deploys, the one
// Prometheus posts to.
func TestAlertDeliveryWiring(t *testing.T) {
	s := fresh(t, "base")
	targets, ps := AlertmanagerTargets(s, "pulse")
	reportProblems(t, "base", ps)
	if len(targets) != 1 || targets[0].Name != "alertmanager:9093" || targets[0].Service.Name != "alertmanager" || targets[0].Pod != "" || targets[0].Port != 9093 ||
		len(targets[0].Workloads) != 1 || targets[0].Workloads[0].Name != "alertmanager" {
		t.Fatalf("ALERTMANAGER_URL resolves to %+v, want the alertmanager Deployment's port 9093 through Service alertmanager", targets)
	}
	for _, p := range CheckSet(s, secretTemplates(t)).Problems {
		// alertDelivery's problems (TestCrossReferences reports every other).
		if strings.HasPrefix(p, "ALERTMANAGER_URL ") || strings.HasPrefix(p, "ALERT_LINK_BASE ") || strings.Contains(p, "ALERTMANAGER_URL is not set") {
			t.Error(p)
		}
	}
}

// ALERTMANAGER_URL may come from a Secret (it may carry a password): the
// checks cannot read it then, and accept it.
func TestAlertDeliveryFromASecret(t *testing.T) {
	secrets := secretTemplates(t)
	before := map[string]bool{}
	for _, p := range CheckSet(fresh(t, "base"), secrets).Problems {
		before[p] = true
	}
	s := fresh(t, "base")
	delete(s.ConfigMapByPrefix("pulse", "pulse-analyzer-config").Data, "ALERTMANAGER_URL")
	c := namedContainer(s.Deployment("pulse", "analyzer"), "analyzer")
	c.Env = append(c.Env, corev1.EnvVar{Name: "ALERTMANAGER_URL", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pulse-redis"}, Key: "password"},
	}})
	for _, p := range CheckSet(s, secrets).Problems {
		if !before[p] && (strings.Contains(p, "ALERTMANAGER_URL") && !strings.Contains(p, "is not read by analyzer") || strings.Contains(p, "internal/config rejects")) {
			t.Error(p)
		}
	}
	if targets, ps := AlertmanagerTargets(s, "pulse"); len(targets)+len(ps) > 0 {
		t.Errorf("targets %v, problems %v from a Secret's URL", targets, ps)
	}
}

// haAlertmanager turns the base's Alertmanager into a cluster of two, as
// an operator would: a StatefulSet behind a headless Service, Prometheus
// and the analyzers listing the pods promTargets and urls.
func haAlertmanager(t *testing.T, s *Set, urls string, promTargets ...string) {
	t.Helper()
	d := s.Deployment("pulse", "alertmanager")
	two := int32(2)
	st := &appsv1.StatefulSet{
		ObjectMeta: d.ObjectMeta,
		Spec: appsv1.StatefulSetSpec{
			Replicas: &two, ServiceName: "alertmanager", Selector: d.Spec.Selector, Template: d.Spec.Template,
		},
	}
	var kept []Object
	for _, o := range s.Objects {
		if o.Obj != d {
			kept = append(kept, o)
		}
	}
	s.Objects = append(kept, Object{Namespace: "pulse", Name: st.Name, Obj: st})
	s.Service("pulse", "alertmanager").Spec.ClusterIP = corev1.ClusterIPNone
	s.ConfigMapByPrefix("pulse", "pulse-analyzer-config").Data["ALERTMANAGER_URL"] = urls
	cm := s.ConfigMapByPrefix("pulse", "prometheus-config")
	quoted := `"` + strings.Join(promTargets, `", "`) + `"`
	cm.Data["prometheus.yml"] = strings.Replace(cm.Data["prometheus.yml"], `- targets: ["alertmanager:9093"]`, "- targets: ["+quoted+"]", 1)
	if !strings.Contains(cm.Data["prometheus.yml"], quoted) {
		t.Fatal("prometheus.yml's alerting target not found")
	}
}

// An Alertmanager cluster listed pod by pod passes, in the form Kubernetes
// names StatefulSet pods.
func TestAlertDeliveryToACluster(t *testing.T) {
	s := fresh(t, "base")
	haAlertmanager(t, s, "http://alertmanager-0.alertmanager:9093, http://alertmanager-1.alertmanager.pulse.svc.cluster.local:9093",
		"alertmanager-0.alertmanager:9093", "alertmanager-1.alertmanager:9093")
	for _, p := range CheckSet(s, secretTemplates(t)).Problems {
		if strings.HasPrefix(p, "ALERTMANAGER_URL ") || strings.HasPrefix(p, "prometheus.yml: alertmanager") {
			t.Error(p)
		}
	}
	reportProblems(t, "base with an Alertmanager cluster", alertmanagerReached(s))
	targets, _ := AlertmanagerTargets(s, "pulse")
	if len(targets) != 2 || targets[1].Pod != "alertmanager-1" || targets[1].Workloads[0].Kind != "StatefulSet" || targets[1].Port != 9093 {
		t.Errorf("targets %+v, want the two pods of StatefulSet alertmanager on 9093", targets)
	}
}

// The delivery checks catch real mistakes: each mutation of the rendered
// base adds the problem wanted (problems the base already has do not
// count).
func TestAlertDeliveryChecksCatchMistakes(t *testing.T) {
	secrets := secretTemplates(t)
	before := map[string]bool{}
	for _, p := range CheckSet(fresh(t, "base"), secrets).Problems {
		before[p] = true
	}
	setting := func(k, v string) func(*testing.T, *Set) {
		return func(t *testing.T, s *Set) {
			cm := s.ConfigMapByPrefix("pulse", "pulse-analyzer-config")
			if cm == nil {
				t.Fatal("no pulse-analyzer-config")
			}
			if v == "" {
				delete(cm.Data, k)
			} else {
				cm.Data[k] = v
			}
		}
	}
	am := func(t *testing.T, s *Set) *corev1.Container {
		c := namedContainer(s.Deployment("pulse", "alertmanager"), "alertmanager")
		if c == nil {
			t.Fatal("no alertmanager container")
		}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*testing.T, *Set)
		want   string
	}{
		{"delivery off", setting("ALERTMANAGER_URL", ""), "ALERTMANAGER_URL is not set"},
		{"no such Service", setting("ALERTMANAGER_URL", "http://alertmanagr:9093"), `ALERTMANAGER_URL http://alertmanagr:9093: no Service "alertmanagr"`},
		{"wrong port", setting("ALERTMANAGER_URL", "http://alertmanager:9094"), "Service alertmanager has no port 9094"},
		{"default port", setting("ALERTMANAGER_URL", "http://alertmanager"), "Service alertmanager has no port 80"},
		{"another namespace", setting("ALERTMANAGER_URL", "http://alertmanager.monitoring:9093"), `host "alertmanager.monitoring" is neither a Service of namespace pulse nor a pod of one`},
		{"not a URL", setting("ALERTMANAGER_URL", "alertmanager:9093"), "is not an http(s) base URL"},
		{"credentials in a ConfigMap", setting("ALERTMANAGER_URL", "http://pulse:secret@alertmanager:9093"), "carries credentials in a ConfigMap"},
		{"the API's path", setting("ALERTMANAGER_URL", "http://alertmanager:9093/api/v2/alerts"), "path /api/v2/alerts, but Deployment pulse/alertmanager serves its API under /"},
		{"Alertmanager under a route prefix", func(t *testing.T, s *Set) {
			c := am(t, s)
			c.Args = append(c.Args, "--web.route-prefix=/alertmanager")
		}, "path /, but Deployment pulse/alertmanager serves its API under /alertmanager"},
		{"Alertmanager on another port", func(t *testing.T, s *Set) {
			c := am(t, s)
			for i, a := range c.Args {
				if strings.HasPrefix(a, "--web.listen-address=") {
					c.Args[i] = "--web.listen-address=:9095"
				}
			}
		}, "leads to port 9093 of Deployment pulse/alertmanager, Alertmanager listens on :9095"},
		{"a load-balancing Service", func(t *testing.T, s *Set) {
			two := int32(2)
			s.Deployment("pulse", "alertmanager").Spec.Replicas = &two
		}, "Service alertmanager is in front of 2 replicas of Deployment pulse/alertmanager: list each replica"},
		{"not an Alertmanager", setting("ALERTMANAGER_URL", "http://api:8081"), "Service api selects Deployment pulse/api, which runs no Alertmanager"},
		{"an Alertmanager Prometheus does not use", func(t *testing.T, s *Set) {
			svc := s.Service("pulse", "alertmanager").DeepCopy()
			svc.Name = "alertmanager-b"
			s.Objects = append(s.Objects, Object{Namespace: "pulse", Name: svc.Name, Obj: svc})
			setting("ALERTMANAGER_URL", "http://alertmanager:9093,http://alertmanager-b:9093")(t, s)
		}, "ALERTMANAGER_URL names [alertmanager-b:9093 alertmanager:9093], prometheus.yml's alerting names [alertmanager:9093]"},
		{"a Service without pods", func(t *testing.T, s *Set) {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "alertmanager", Namespace: "pulse"},
				Spec: corev1.ServiceSpec{
					Selector: map[string]string{"app.kubernetes.io/name": "alertmanagerr"},
					Ports:    []corev1.ServicePort{{Name: "http", Port: 9093, TargetPort: intstr.FromString("http")}},
				},
			}
			*s.Service("pulse", "alertmanager") = *svc
		}, "Service alertmanager leads to no pod port"},
		{"a replica left out", func(t *testing.T, s *Set) {
			haAlertmanager(t, s, "http://alertmanager-0.alertmanager:9093", "alertmanager-0.alertmanager:9093")
		}, "ALERTMANAGER_URL lists 1 of the 2 replicas of StatefulSet pulse/alertmanager"},
		{"a cluster behind its Service name", func(t *testing.T, s *Set) {
			haAlertmanager(t, s, "http://alertmanager:9093", "alertmanager:9093")
		}, "Service alertmanager is in front of 2 replicas of StatefulSet pulse/alertmanager: list each replica"},
		{"a pod that does not exist", func(t *testing.T, s *Set) {
			haAlertmanager(t, s, "http://alertmanager-0.alertmanager:9093,http://alertmanager-2.alertmanager:9093",
				"alertmanager-0.alertmanager:9093", "alertmanager-1.alertmanager:9093")
		}, "alertmanager-2 is no pod of a StatefulSet of Service alertmanager"},
		{"pods named through a Service that is not headless", func(t *testing.T, s *Set) {
			haAlertmanager(t, s, "http://alertmanager-0.alertmanager:9093,http://alertmanager-1.alertmanager:9093",
				"alertmanager-0.alertmanager:9093", "alertmanager-1.alertmanager:9093")
			s.Service("pulse", "alertmanager").Spec.ClusterIP = ""
		}, "Service alertmanager is not headless"},
		{"Prometheus posts to another replica set", func(t *testing.T, s *Set) {
			haAlertmanager(t, s, "http://alertmanager-0.alertmanager:9093,http://alertmanager-1.alertmanager:9093", "alertmanager-0.alertmanager:9093")
		}, "ALERTMANAGER_URL names [alertmanager-0.alertmanager:9093 alertmanager-1.alertmanager:9093], prometheus.yml's alerting names [alertmanager-0.alertmanager:9093]"},
		{"links elsewhere", setting("ALERT_LINK_BASE", "http://pulse.example.com"), `host "pulse.example.com" is not the Ingress's host "pulse.local"`},
		{"links with a path", setting("ALERT_LINK_BASE", "http://pulse.local/api"), "path /api, but Ingress pulse serves /alerts at the root"},
		{"links over https without TLS", setting("ALERT_LINK_BASE", "https://pulse.local"), "https, but Ingress pulse has no TLS for pulse.local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fresh(t, "base")
			tt.mutate(t, s)
			ps := CheckSet(s, secrets).Problems
			for _, p := range ps {
				if strings.Contains(p, tt.want) && !before[p] {
					return
				}
			}
			t.Errorf("not reported (want a new problem containing %q); got %q", tt.want, ps)
		})
	}
}
