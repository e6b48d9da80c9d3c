package check

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/pulse-iot/pulse/internal/config"
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

// onlyFrom lists, for the workloads only a few pods may connect to, those
// pods' workloads and how messages name them.
var onlyFrom = map[string]struct {
	names []string
	say   string
}{
	config.Analyzer: {[]string{"prometheus"}, "Prometheus's pods"},
	"alertmanager":  {[]string{"prometheus", config.Analyzer}, "Prometheus's and the analyzer's pods"},
}

// CheckNetworkPolicies verifies who may connect to the pipeline's pods
// and to Alertmanager:
//   - every Pulse Deployment, the redis StatefulSet and the alertmanager
//     Deployment is selected by exactly one NetworkPolicy that restricts
//     ingress;
//   - every rule names its peers and its ports (a rule without either
//     admits everyone, or every port, admin listeners included), and every
//     port is a declared port of the pods;
//   - a Pulse service admits one port only, the one Prometheus scrapes
//     (prometheus.io/port, its HTTP_ADDR): never an admin port;
//   - the analyzer admits Prometheus's pods and nothing else; Alertmanager
//     (its API is unauthenticated, silences included) Prometheus's and the
//     analyzer's pods and nothing else;
//   - Prometheus may reach the scrape port of every pod it scrapes;
//   - the analyzer and Prometheus may reach, through ingress and egress
//     policies alike, the port of every Alertmanager of ALERTMANAGER_URL.
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
		if !pulse && !(w.Kind == "StatefulSet" && w.Name == "redis") && !(w.Kind == "Deployment" && w.Name == "alertmanager") {
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
				if only, ok := onlyFrom[w.Name]; ok && !(peer.PodSelector != nil && peer.NamespaceSelector == nil && peer.IPBlock == nil &&
					onlySelects(s, w.Namespace, peer.PodSelector, only.names...)) {
					p.add("%s admits to the %s a peer other than %s", rid, w.Name, only.say)
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
	p = append(p, alertmanagerReached(s)...)
	sort.Strings(p)
	return p
}

// alertmanagerReached: the analyzer (device alerts) and Prometheus (its
// alerts; prometheus.yml names the same Alertmanagers, CheckSet verifies
// it) may connect to every Alertmanager of ALERTMANAGER_URL.
func alertmanagerReached(s *Set) Problems {
	var p Problems
	targets, _ := AlertmanagerTargets(s, "pulse") // CheckSet reports what does not resolve
	for _, client := range []string{config.Analyzer, "prometheus"} {
		from, ok := findWorkload(s, "Deployment", "pulse", client)
		if !ok {
			continue
		}
		for _, t := range targets {
			for _, w := range t.Workloads {
				if !reaches(s, from, w, t.Port) {
					p.add("NetworkPolicies: %s cannot reach %s on port %d (ALERTMANAGER_URL %s)", from.ID(), w.ID(), t.Port, t.URL)
				}
			}
		}
	}
	return p
}

// reaches reports whether the NetworkPolicies let from's pods open a TCP
// connection to port of to's pods: if policies restrict to's ingress, one
// of their rules admits from on that port; if policies restrict from's
// egress, one of their rules allows it. ipBlock peers never match (pod
// addresses are not known here).
func reaches(s *Set, from, to Workload, port int32) bool {
	inRestricted, inOK, outRestricted, outOK := false, false, false, false
	for _, np := range s.NetworkPolicies() {
		types := policyTypes(np)
		if np.Namespace == to.Namespace && selects(&np.Spec.PodSelector, to.Template.Labels) && hasString(types, string(networkingv1.PolicyTypeIngress)) {
			inRestricted = true
			for _, r := range np.Spec.Ingress {
				inOK = inOK || peersMatch(s, r.From, np.Namespace, from) && portsMatch(r.Ports, to, port)
			}
		}
		if np.Namespace == from.Namespace && selects(&np.Spec.PodSelector, from.Template.Labels) && hasString(types, string(networkingv1.PolicyTypeEgress)) {
			outRestricted = true
			for _, r := range np.Spec.Egress {
				outOK = outOK || peersMatch(s, r.To, np.Namespace, to) && portsMatch(r.Ports, to, port)
			}
		}
	}
	return (!inRestricted || inOK) && (!outRestricted || outOK)
}

// peersMatch reports whether a rule's peers (none: every peer) include
// w's pods; policyNS is the policy's namespace.
func peersMatch(s *Set, peers []networkingv1.NetworkPolicyPeer, policyNS string, w Workload) bool {
	if len(peers) == 0 {
		return true
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			continue
		}
		nsOK := w.Namespace == policyNS
		if peer.NamespaceSelector != nil {
			nsOK = selects(peer.NamespaceSelector, namespaceLabels(s, w.Namespace))
		}
		podOK := peer.PodSelector == nil || selects(peer.PodSelector, w.Template.Labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

// namespaceLabels are a namespace's labels, with the one Kubernetes sets
// on every namespace.
func namespaceLabels(s *Set, ns string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": ns}
	for _, n := range s.Namespaces() {
		if n.Name == ns {
			for k, v := range n.Labels {
				out[k] = v
			}
		}
	}
	return out
}

// portsMatch reports whether a rule's ports (none: every port) include
// TCP port of to's pods (a named port is resolved on them).
func portsMatch(ports []networkingv1.NetworkPolicyPort, to Workload, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		if pp.Protocol != nil && *pp.Protocol != corev1.ProtocolTCP {
			continue
		}
		if pp.Port == nil {
			return true
		}
		if pp.Port.Type == intstr.Int && pp.EndPort != nil {
			if pp.Port.IntVal <= port && port <= *pp.EndPort {
				return true
			}
			continue
		}
		if n, ok := podPort(to.Template, pp.Port); ok && n == port {
			return true
		}
	}
	return false
}

func policyTypes(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, t := range np.Spec.PolicyTypes {
		out = append(out, string(t))
	}
	if len(out) == 0 { // the API's default: Ingress, plus Egress when egress rules exist
		out = append(out, string(networkingv1.PolicyTypeIngress))
		if len(np.Spec.Egress) > 0 {
			out = append(out, string(networkingv1.PolicyTypeEgress))
		}
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

// onlySelects reports whether sel selects the pods of some of the
// workloads names and of no other workload in ns.
func onlySelects(s *Set, ns string, sel *metav1.LabelSelector, names ...string) bool {
	found := false
	for _, w := range s.Workloads() {
		if w.Namespace != ns || !selects(sel, w.Template.Labels) {
			continue
		}
		if !hasString(names, w.Name) {
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
