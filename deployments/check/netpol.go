package check

import (
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NetworkPolicies returns the set's NetworkPolicies.
func (s *Set) NetworkPolicies() []*networkingv1.NetworkPolicy {
	return typed[*networkingv1.NetworkPolicy](s)
}

// CheckNetworkPolicies verifies who may connect to the pipeline's pods:
//   - every Pulse Deployment and the redis StatefulSet is selected by
//     exactly one NetworkPolicy that restricts ingress;
//   - every rule names its peers and its ports (a rule without either
//     admits everyone, or every port, admin listeners included), and every
//     port is a declared port of the pods;
//   - a Pulse service admits one port only, the one Prometheus scrapes
//     (prometheus.io/port, its HTTP_ADDR): never an admin port;
//   - the analyzer admits Prometheus's pods and nothing else;
//   - Prometheus may reach the scrape port of every pod it scrapes.
func CheckNetworkPolicies(s *Set) []string {
	var p Problems
	prom := s.Deployment("pulse", "prometheus")
	if prom == nil {
		p.add("Deployment prometheus is missing")
		return p
	}
	promLabels := prom.Spec.Template.Labels
	for _, w := range s.Workloads() {
		pulse := hasString(PulseServices, w.Name) && w.Kind == "Deployment"
		if !pulse && !(w.Kind == "StatefulSet" && w.Name == "redis") {
			continue
		}
		id := w.ID()
		var pols []*networkingv1.NetworkPolicy
		for _, np := range s.NetworkPolicies() {
			if np.Namespace == w.Namespace && selects(&np.Spec.PodSelector, w.Template.Labels) {
				pols = append(pols, np)
			}
		}
		if len(pols) != 1 {
			p.add("%s is selected by %d NetworkPolicies, want 1", id, len(pols))
			continue
		}
		np := pols[0]
		if !hasString(policyTypes(np), string(networkingv1.PolicyTypeIngress)) {
			p.add("NetworkPolicy %s does not restrict ingress to %s", np.Name, id)
			continue
		}
		scrapePort, _ := strconv.Atoi(w.Template.Annotations["prometheus.io/port"])
		promReaches := false
		for i, rule := range np.Spec.Ingress {
			rid := fmt.Sprintf("NetworkPolicy %s rule %d", np.Name, i)
			if len(rule.From) == 0 {
				p.add("%s admits every peer", rid)
			}
			if len(rule.Ports) == 0 {
				p.add("%s admits every port (admin listeners included)", rid)
			}
			fromProm := false
			for _, peer := range rule.From {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil && selects(peer.PodSelector, promLabels) {
					fromProm = true
				}
				if w.Name == "analyzer" && !(peer.PodSelector != nil && peer.NamespaceSelector == nil && peer.IPBlock == nil &&
					onlySelects(s, w.Namespace, peer.PodSelector, "prometheus")) {
					p.add("%s admits to the analyzer a peer other than Prometheus's pods", rid)
				}
			}
			for _, port := range rule.Ports {
				n, ok := podPort(w.Template, port.Port)
				if !ok {
					p.add("%s admits port %v, which %s does not declare", rid, port.Port, id)
					continue
				}
				if pulse && int(n) != scrapePort {
					p.add("%s admits port %d of %s, not its service and metrics port %d", rid, n, id, scrapePort)
				}
				if fromProm && int(n) == scrapePort {
					promReaches = true
				}
			}
		}
		if w.Template.Annotations["prometheus.io/scrape"] == "true" && !promReaches {
			p.add("NetworkPolicy %s: Prometheus cannot reach %s's scrape port %d", np.Name, id, scrapePort)
		}
	}
	sort.Strings(p)
	return p
}

func policyTypes(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, t := range np.Spec.PolicyTypes {
		out = append(out, string(t))
	}
	if len(out) == 0 { // the API's default: Ingress, plus Egress when egress rules exist
		out = append(out, string(networkingv1.PolicyTypeIngress))
	}
	return out
}

// selects applies a NetworkPolicy selector: empty selects every pod.
func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	ls, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && ls.Matches(labels.Set(l))
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// onlySelects reports whether sel selects the pods of workload name and
// of no other workload in ns.
func onlySelects(s *Set, ns string, sel *metav1.LabelSelector, name string) bool {
	found := false
	for _, w := range s.Workloads() {
		if w.Namespace != ns || !selects(sel, w.Template.Labels) {
			continue
		}
		if w.Name != name {
			return false
		}
		found = true
	}
	return found
}

// podPort resolves a NetworkPolicy port (number or name) against the
// template's declared container ports.
func podPort(t *corev1.PodTemplateSpec, port *intstr.IntOrString) (int32, bool) {
	if port == nil {
		return 0, false
	}
	for _, ctr := range t.Spec.Containers {
		for _, cp := range ctr.Ports {
			if port.Type == intstr.String && cp.Name == port.StrVal || port.Type == intstr.Int && cp.ContainerPort == port.IntVal {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}
