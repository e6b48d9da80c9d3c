package check

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/pulse-iot/pulse/internal/config"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Endpoint is a host:port of the namespace resolved in a rendered set: a
// Service, whose port leads to a declared port of the pods it selects,
// or, through its headless Service, one pod of a StatefulSet
// (pod.service), on a declared port of that pod.
type Endpoint struct {
	Name      string // service:port or pod.service:port
	Service   *corev1.Service
	Pod       string     // the StatefulSet's pod, or ""
	Workloads []Workload // what serves it
	Port      int32      // the container port it leads to
}

// AlertmanagerTarget is one Alertmanager of the analyzer's
// ALERTMANAGER_URL, resolved.
type AlertmanagerTarget struct {
	URL string // password masked
	Endpoint
}

// resolveEndpoint resolves hostport (host: a Service, or pod.service of a
// StatefulSet, optionally followed by .ns, .ns.svc or
// .ns.svc.cluster.local) in namespace ns.
func resolveEndpoint(s *Set, ns, hostport string) (Endpoint, error) {
	host, portS, err := net.SplitHostPort(hostport)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%q is not host:port", hostport)
	}
	port, _ := strconv.Atoi(portS)
	for _, suffix := range []string{"." + ns + ".svc.cluster.local", "." + ns + ".svc", "." + ns} {
		if strings.HasSuffix(host, suffix) {
			host = strings.TrimSuffix(host, suffix)
			break
		}
	}
	pod, name, isPod := strings.Cut(host, ".")
	if !isPod {
		name, pod = host, ""
	}
	svc := s.Service(ns, name)
	if isPod && svc == nil {
		return Endpoint{}, fmt.Errorf("host %q is neither a Service of namespace %s nor a pod of one", host, ns)
	}
	if svc == nil {
		return Endpoint{}, fmt.Errorf("no Service %q", name)
	}
	e := Endpoint{Name: host + ":" + portS, Service: svc, Pod: pod}
	if isPod {
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			return Endpoint{}, fmt.Errorf("%s: Service %s is not headless, its pods have no names", host, name)
		}
		for _, st := range s.StatefulSets() {
			n := int32(1)
			if st.Spec.Replicas != nil {
				n = *st.Spec.Replicas
			}
			i, err := strconv.Atoi(strings.TrimPrefix(pod, st.Name+"-"))
			if st.Namespace != ns || st.Spec.ServiceName != name || !strings.HasPrefix(pod, st.Name+"-") || err != nil || i < 0 || int32(i) >= n {
				continue
			}
			w, _ := findWorkload(s, "StatefulSet", ns, st.Name)
			if cp, ok := podPort(w.Template, ptr(intstr.FromInt32(int32(port)))); ok {
				e.Workloads, e.Port = []Workload{w}, cp
				return e, nil
			}
			return Endpoint{}, fmt.Errorf("%s: pod %s declares no port %d", host, pod, port)
		}
		return Endpoint{}, fmt.Errorf("%s: %s is no pod of a StatefulSet of Service %s", host, pod, name)
	}
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) != port {
			continue
		}
		tp := sp.TargetPort
		if tp.Type == intstr.Int && tp.IntVal == 0 {
			tp = intstr.FromInt32(sp.Port)
		}
		e.Workloads = selectedWorkloads(s, svc.Spec.Selector)
		for _, w := range e.Workloads {
			if cp, ok := podPort(w.Template, &tp); ok {
				e.Port = cp
			}
		}
		if len(e.Workloads) == 0 || e.Port == 0 {
			return Endpoint{}, fmt.Errorf("Service %s leads to no pod port", name)
		}
		return e, nil
	}
	return Endpoint{}, fmt.Errorf("Service %s has no port %s", name, portS)
}

func ptr[T any](v T) *T { return &v }

// analyzerSetting returns the value of the analyzer container's variable
// name as the kubelet sets it (env entries override envFrom ConfigMaps),
// and where it comes from: "ConfigMap", "value", "Secret" (value unknown)
// or "" when it is not set.
func analyzerSetting(s *Set, ns, name string) (value, kind string) {
	ctr := namedContainer(s.Deployment(ns, config.Analyzer), config.Analyzer)
	if ctr == nil {
		return "", ""
	}
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		if cm := s.ConfigMap(ns, ef.ConfigMapRef.Name); cm != nil {
			if v, ok := cm.Data[strings.TrimPrefix(name, ef.Prefix)]; ok && strings.HasPrefix(name, ef.Prefix) {
				value, kind = v, "ConfigMap"
			}
		}
	}
	for _, e := range ctr.Env {
		if e.Name != name {
			continue
		}
		switch {
		case e.ValueFrom == nil:
			value, kind = e.Value, "value"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := s.ConfigMap(ns, e.ValueFrom.ConfigMapKeyRef.Name); cm != nil {
				value = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
			kind = "ConfigMap"
		default:
			value, kind = "", "Secret"
		}
	}
	return value, kind
}

// AlertmanagerTargets resolves the analyzer's ALERTMANAGER_URL in the set
// (resolveEndpoint); what does not resolve is returned as problems. A URL
// from a Secret cannot be read: no targets.
func AlertmanagerTargets(s *Set, ns string) ([]AlertmanagerTarget, Problems) {
	var p Problems
	raw, kind := analyzerSetting(s, ns, "ALERTMANAGER_URL")
	if kind == "Secret" {
		return nil, nil
	}
	var out []AlertmanagerTarget
	for _, entry := range strings.Split(raw, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		u, err := url.Parse(entry)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			p.add("ALERTMANAGER_URL %q is not an http(s) base URL", entry)
			continue
		}
		if u.User != nil {
			p.add("ALERTMANAGER_URL %s carries credentials in a %s: take the variable from a Secret", u.Redacted(), kind)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		e, err := resolveEndpoint(s, ns, net.JoinHostPort(u.Hostname(), port))
		if err != nil {
			p.add("ALERTMANAGER_URL %s: %v", u.Redacted(), err)
			continue
		}
		out = append(out, AlertmanagerTarget{u.Redacted(), e})
	}
	return out, p
}

// selectedWorkloads returns the workloads whose pods a Service selector
// matches.
func selectedWorkloads(s *Set, sel map[string]string) []Workload {
	var out []Workload
	for _, w := range s.Workloads() {
		if len(sel) > 0 && selectorMatches(&metav1.LabelSelector{MatchLabels: sel}, w.Template.Labels) {
			out = append(out, w)
		}
	}
	return out
}

// alertDelivery: the analyzers post device alerts to the Alertmanagers
// Prometheus posts to, each replica by its own address, on the port and
// path prefix Alertmanager serves, without credentials in a ConfigMap;
// their links lead to the api through the Ingress.
func (c *checker) alertDelivery() {
	raw, kind := analyzerSetting(c.s, c.ns, "ALERTMANAGER_URL")
	if strings.TrimSpace(raw) == "" && kind != "Secret" {
		c.p.add("Deployment analyzer: ALERTMANAGER_URL is not set: device alerts reach no Alertmanager (docs/ALERTING.md)")
		return
	}
	targets, ps := AlertmanagerTargets(c.s, c.ns)
	c.p = append(c.p, ps...)
	var names []string
	listed := map[string]map[string]bool{} // StatefulSet -> its pods listed
	for _, t := range targets {
		names = append(names, t.Name)
		for _, w := range t.Workloads {
			c.alertmanagerTarget(t, w)
			if t.Pod != "" {
				if listed[w.Name] == nil {
					listed[w.Name] = map[string]bool{}
				}
				listed[w.Name][t.Pod] = true
			}
		}
	}
	for st, pods := range listed {
		if w, ok := findWorkload(c.s, "StatefulSet", c.ns, st); ok && int32(len(pods)) < replicas(c.s, w) {
			c.p.add("ALERTMANAGER_URL lists %d of the %d replicas of %s: every one must receive every alert", len(pods), replicas(c.s, w), w.ID())
		}
	}
	if kind != "Secret" && len(ps) == 0 {
		sort.Strings(names)
		if strings.Join(names, " ") != strings.Join(c.promAlertmanagers, " ") {
			c.p.add("ALERTMANAGER_URL names %v, prometheus.yml's alerting names %v: the analyzers must post to the Alertmanagers Prometheus posts to", names, c.promAlertmanagers)
		}
	}
	c.alertLinks()
}

// replicas is a workload's replica count (1 when unset).
func replicas(s *Set, w Workload) int32 {
	switch {
	case w.StatefulSet != nil && w.StatefulSet.Spec.Replicas != nil:
		return *w.StatefulSet.Spec.Replicas
	case w.Kind == "Deployment":
		if d := s.Deployment(w.Namespace, w.Name); d != nil && d.Spec.Replicas != nil {
			return *d.Spec.Replicas
		}
	}
	return 1
}

// alertmanagerTarget checks one workload behind an ALERTMANAGER_URL.
func (c *checker) alertmanagerTarget(t AlertmanagerTarget, w Workload) {
	var am *corev1.Container
	for i := range w.Template.Spec.Containers {
		if strings.Contains(w.Template.Spec.Containers[i].Image, "alertmanager:") {
			am = &w.Template.Spec.Containers[i]
		}
	}
	if am == nil {
		c.p.add("ALERTMANAGER_URL %s: Service %s selects %s, which runs no Alertmanager", t.URL, t.Service.Name, w.ID())
		return
	}
	listen := flagValue(am.Args, "--web.listen-address")
	if listen == "" {
		listen = ":9093"
	}
	if listen[strings.LastIndexByte(listen, ':')+1:] != strconv.Itoa(int(t.Port)) {
		c.p.add("ALERTMANAGER_URL %s leads to port %d of %s, Alertmanager listens on %s", t.URL, t.Port, w.ID(), listen)
	}
	prefix := flagValue(am.Args, "--web.route-prefix")
	if prefix == "" {
		if ext, err := url.Parse(flagValue(am.Args, "--web.external-url")); err == nil {
			prefix = ext.Path
		}
	}
	u, _ := url.Parse(t.URL)
	if want, got := path.Clean("/"+prefix), path.Clean("/"+u.Path); want != got {
		c.p.add("ALERTMANAGER_URL %s: path %s, but %s serves its API under %s", t.URL, got, w.ID(), want)
	}
	if n := replicas(c.s, w); t.Pod == "" && n > 1 {
		c.p.add("ALERTMANAGER_URL %s: Service %s is in front of %d replicas of %s: list each replica, as Prometheus does (every one must receive every alert)", t.URL, t.Service.Name, n, w.ID())
	}
}

// alertLinks: ALERT_LINK_BASE, when set, is the Ingress's host, whose
// /alerts goes to the api (ingress checks that route).
func (c *checker) alertLinks() {
	raw, _ := analyzerSetting(c.s, c.ns, "ALERT_LINK_BASE")
	if strings.TrimSpace(raw) == "" {
		return
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		c.p.add("ALERT_LINK_BASE %q is not an http(s) URL", raw)
		return
	}
	ings := c.s.Ingresses()
	if len(ings) != 1 || len(ings[0].Spec.Rules) != 1 {
		return // ingress reports it
	}
	ing := ings[0]
	host := ing.Spec.Rules[0].Host
	if u.Host != host {
		c.p.add("ALERT_LINK_BASE %s: host %q is not the Ingress's host %q: the links in alerts would lead nowhere", raw, u.Host, host)
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		c.p.add("ALERT_LINK_BASE %s: path %s, but Ingress %s serves /alerts at the root", raw, p, ing.Name)
	}
	tls := false
	for _, t := range ing.Spec.TLS {
		tls = tls || hasString(t.Hosts, host)
	}
	if u.Scheme == "https" && !tls {
		c.p.add("ALERT_LINK_BASE %s: https, but Ingress %s has no TLS for %s", raw, ing.Name, host)
	}
}
