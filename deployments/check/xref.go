package check

import (
	"fmt"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulse-iot/pulse/internal/config"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PulseServices are the three Pulse tiers; each is a Deployment and a
// container of that name.
var PulseServices = []string{config.Ingest, config.Analyzer, config.API}

// SecretTemplates maps a Secret name to its keys, from the templates in
// deployments/k8s/secrets (the Secrets themselves are never in git).
type SecretTemplates map[string]map[string]bool

// Problems collects check failures.
type Problems []string

func (p *Problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Report is what CheckSet learned, for further checks.
type Report struct {
	Problems Problems
	Shards   int // SHARDS as configured for the services
}

// CheckSet verifies the cross-references of one rendered kustomization.
func CheckSet(s *Set, secrets SecretTemplates) Report {
	c := &checker{s: s, secrets: secrets}
	c.namespaces()
	for _, w := range s.Workloads() {
		c.workload(w)
	}
	c.services()
	c.pulseServices()
	c.redis()
	c.autoscalers()
	c.pdbs()
	c.ingress()
	c.rbac()
	c.monitoring()
	sort.Strings(c.p)
	return Report{Problems: c.p, Shards: c.shards}
}

type checker struct {
	s       *Set
	secrets SecretTemplates
	p       Problems
	shards  int
	ns      string
	// promAlertmanagers are the Service:port of prometheus.yml's
	// Alertmanagers, sorted.
	promAlertmanagers []string
}

func (c *checker) namespaces() {
	nss := c.s.Namespaces()
	if len(nss) != 1 {
		c.p.add("want exactly one Namespace object, got %d", len(nss))
		return
	}
	c.ns = nss[0].Name
	for _, o := range c.s.Objects {
		if o.GVK.Kind != "Namespace" && o.Namespace != c.ns {
			c.p.add("%s: namespace %q, want %q", o.ID(), o.Namespace, c.ns)
		}
	}
	for _, sec := range c.s.Secrets() {
		c.p.add("Secret %s is rendered: secrets must not be kept in git (use deployments/k8s/secrets templates)", sec.Name)
	}
}

// secretKey reports whether the Secret name (rendered or a template) has key.
func (c *checker) secretKey(name, key string) bool {
	for _, sec := range c.s.Secrets() {
		if sec.Name == name {
			_, a := sec.Data[key]
			_, b := sec.StringData[key]
			return a || b
		}
	}
	return c.secrets[name][key]
}

func (c *checker) secretExists(name string) bool {
	for _, sec := range c.s.Secrets() {
		if sec.Name == name {
			return true
		}
	}
	_, ok := c.secrets[name]
	return ok
}

func (c *checker) configMapKey(name, key string) (string, bool) {
	cm := c.s.ConfigMap(c.ns, name)
	if cm == nil {
		return "", false
	}
	v, ok := cm.Data[key]
	return v, ok
}

func selectorMatches(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(l))
}

func containerPort(ctr *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range ctr.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func imagePinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndexByte(last, ':')
	return i > 0 && last[i+1:] != "latest" && last[i+1:] != ""
}

// workload checks one Deployment's or StatefulSet's pod template: the pod,
// each container, and the volumes they share.
func (c *checker) workload(w Workload) {
	id := w.ID()
	spec := &w.Template.Spec
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	c.templateSelected(id, w)
	c.podSecurity(id, psc)
	c.serviceAccountExists(id, spec.ServiceAccountName)
	vols := c.volumeSources(id, spec)
	portNames := map[string]bool{}
	for _, ctr := range podContainers(spec) {
		cid := id + " container " + ctr.Name
		c.imagePolicy(cid, ctr)
		c.containerSecurity(cid, psc, ctr)
		c.resources(cid, ctr)
		c.uniquePortNames(cid, ctr, portNames)
		c.probes(cid, ctr)
		c.envRefs(cid, ctr)
	}
	c.volumeMounts(id, w, vols)
	c.scrapeAnnotations(id, w.Template)
}

// podContainers returns a pod's init containers, then its containers.
func podContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

func (c *checker) templateSelected(id string, w Workload) {
	if !selectorMatches(w.Selector, w.Template.Labels) {
		c.p.add("%s: selector does not match its pod template labels", id)
	}
}

func (c *checker) podSecurity(id string, psc *corev1.PodSecurityContext) {
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		c.p.add("%s: pod runs as uid 0", id)
	}
}

func (c *checker) serviceAccountExists(id, sa string) {
	if sa == "" || sa == "default" {
		return
	}
	for _, x := range c.s.ServiceAccounts() {
		if x.Name == sa {
			return
		}
	}
	c.p.add("%s: serviceAccountName %q does not exist", id, sa)
}

// volumeSources checks that the ConfigMap, Secret or claim behind each
// volume exists, and returns the volumes by name.
func (c *checker) volumeSources(id string, spec *corev1.PodSpec) map[string]*corev1.Volume {
	vols := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		vols[v.Name] = v
		switch {
		case v.ConfigMap != nil:
			c.configMapVolume(id, v)
		case v.Secret != nil:
			c.secretVolume(id, v)
		case v.PersistentVolumeClaim != nil:
			c.claimVolume(id, v)
		}
	}
	return vols
}

func (c *checker) configMapVolume(id string, v *corev1.Volume) {
	cm := c.s.ConfigMap(c.ns, v.ConfigMap.Name)
	if cm == nil {
		c.p.add("%s: volume %s: ConfigMap %q does not exist", id, v.Name, v.ConfigMap.Name)
		return
	}
	for _, it := range v.ConfigMap.Items {
		if _, ok := cm.Data[it.Key]; !ok {
			c.p.add("%s: volume %s: ConfigMap %s has no key %q", id, v.Name, cm.Name, it.Key)
		}
	}
}

func (c *checker) secretVolume(id string, v *corev1.Volume) {
	if !c.secretExists(v.Secret.SecretName) {
		c.p.add("%s: volume %s: Secret %q has neither a manifest nor a template", id, v.Name, v.Secret.SecretName)
	}
	for _, it := range v.Secret.Items {
		if !c.secretKey(v.Secret.SecretName, it.Key) {
			c.p.add("%s: volume %s: Secret %s has no key %q", id, v.Name, v.Secret.SecretName, it.Key)
		}
	}
}

func (c *checker) claimVolume(id string, v *corev1.Volume) {
	for _, pvc := range c.s.PVCs() {
		if pvc.Name == v.PersistentVolumeClaim.ClaimName {
			return
		}
	}
	c.p.add("%s: volume %s: PVC %q does not exist", id, v.Name, v.PersistentVolumeClaim.ClaimName)
}

// imagePolicy: images are pinned, and locally built ones never pulled.
func (c *checker) imagePolicy(cid string, ctr *corev1.Container) {
	if !imagePinned(ctr.Image) {
		c.p.add("%s: image %q is not pinned to a version tag or digest", cid, ctr.Image)
	}
	if strings.HasPrefix(ctr.Image, "pulse-") && ctr.ImagePullPolicy != corev1.PullIfNotPresent {
		c.p.add("%s: locally built image %q needs imagePullPolicy IfNotPresent", cid, ctr.Image)
	}
}

// containerSecurity: the restricted Pod Security Standard, each setting
// from the container or, where Kubernetes allows, the pod.
func (c *checker) containerSecurity(cid string, psc *corev1.PodSecurityContext, ctr *corev1.Container) {
	sc := ctr.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := (psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
	if !nonRoot {
		c.p.add("%s: runAsNonRoot is not true", cid)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		c.p.add("%s: runs as uid 0", cid)
	}
	seccomp := (psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
		(sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	if !seccomp {
		c.p.add("%s: seccompProfile is not RuntimeDefault", cid)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.p.add("%s: allowPrivilegeEscalation is not false", cid)
	}
	if sc.Privileged != nil && *sc.Privileged {
		c.p.add("%s: privileged", cid)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.p.add("%s: readOnlyRootFilesystem is not true", cid)
	}
	c.capabilities(cid, sc.Capabilities)
}

func (c *checker) capabilities(cid string, caps *corev1.Capabilities) {
	dropAll := false
	if caps != nil {
		for _, cp := range caps.Drop {
			dropAll = dropAll || cp == "ALL"
		}
		if len(caps.Add) > 0 {
			c.p.add("%s: adds capabilities %v", cid, caps.Add)
		}
	}
	if !dropAll {
		c.p.add("%s: capabilities do not drop ALL", cid)
	}
}

func (c *checker) resources(cid string, ctr *corev1.Container) {
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ctr.Resources.Requests[res]; !ok {
			c.p.add("%s: no %s request", cid, res)
		}
		if _, ok := ctr.Resources.Limits[res]; !ok {
			c.p.add("%s: no %s limit", cid, res)
		}
	}
}

// uniquePortNames: a port name is declared once per pod (seen holds the
// names of the pod's containers checked so far).
func (c *checker) uniquePortNames(cid string, ctr *corev1.Container, seen map[string]bool) {
	for _, cp := range ctr.Ports {
		if cp.Name == "" {
			continue
		}
		if seen[cp.Name] {
			c.p.add("%s: port name %q declared twice in the pod", cid, cp.Name)
		}
		seen[cp.Name] = true
	}
}

// probes: liveness and readiness exist, and every probe targets a port of
// its container.
func (c *checker) probes(cid string, ctr *corev1.Container) {
	if ctr.LivenessProbe == nil || ctr.ReadinessProbe == nil {
		c.p.add("%s: needs liveness and readiness probes", cid)
	}
	for kind, pr := range map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
		if pr == nil {
			continue
		}
		if pr.HTTPGet != nil {
			if _, ok := containerPort(ctr, pr.HTTPGet.Port); !ok {
				c.p.add("%s: %s probe port %s is not a port of the container", cid, kind, pr.HTTPGet.Port.String())
			}
		}
		if pr.TCPSocket != nil {
			if _, ok := containerPort(ctr, pr.TCPSocket.Port); !ok {
				c.p.add("%s: %s probe port %s is not a port of the container", cid, kind, pr.TCPSocket.Port.String())
			}
		}
	}
}

// envRefs: the ConfigMaps, Secrets and keys the environment names exist.
func (c *checker) envRefs(cid string, ctr *corev1.Container) {
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef != nil && c.s.ConfigMap(c.ns, ef.ConfigMapRef.Name) == nil {
			c.p.add("%s: envFrom ConfigMap %s does not exist", cid, ef.ConfigMapRef.Name)
		}
		if ef.SecretRef != nil && !c.secretExists(ef.SecretRef.Name) {
			c.p.add("%s: envFrom Secret %s has neither a manifest nor a template", cid, ef.SecretRef.Name)
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			if _, ok := c.configMapKey(r.Name, r.Key); !ok {
				c.p.add("%s: env %s: ConfigMap %s key %s does not exist", cid, e.Name, r.Name, r.Key)
			}
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil && !c.secretKey(r.Name, r.Key) {
			c.p.add("%s: env %s: Secret %s key %s has neither a manifest nor a template", cid, e.Name, r.Name, r.Key)
		}
	}
}

// volumeMounts: every mount has a volume (or a StatefulSet claim
// template), and every volume is mounted.
func (c *checker) volumeMounts(id string, w Workload, vols map[string]*corev1.Volume) {
	claimTemplates := map[string]bool{}
	if w.StatefulSet != nil {
		for _, vct := range w.StatefulSet.Spec.VolumeClaimTemplates {
			claimTemplates[vct.Name] = true
		}
	}
	mounted := map[string]bool{}
	for _, ctr := range podContainers(&w.Template.Spec) {
		for _, vm := range ctr.VolumeMounts {
			mounted[vm.Name] = true
			if vols[vm.Name] == nil && !claimTemplates[vm.Name] {
				c.p.add("%s container %s: volumeMount %q has no volume", id, ctr.Name, vm.Name)
			}
		}
	}
	for name := range vols {
		if !mounted[name] {
			c.p.add("%s: volume %q is never mounted", id, name)
		}
	}
}

// scrapeAnnotations: a pod that asks to be scraped names one of its
// container ports and an absolute path.
func (c *checker) scrapeAnnotations(id string, t *corev1.PodTemplateSpec) {
	if t.Annotations["prometheus.io/scrape"] != "true" {
		return
	}
	port, err := strconv.Atoi(t.Annotations["prometheus.io/port"])
	found := false
	for i := range t.Spec.Containers {
		if _, ok := containerPort(&t.Spec.Containers[i], intstr.FromInt32(int32(port))); ok {
			found = true
		}
	}
	if err != nil || !found {
		c.p.add("%s: prometheus.io/port %q is not a containerPort of the pod", id, t.Annotations["prometheus.io/port"])
	}
	if !strings.HasPrefix(t.Annotations["prometheus.io/path"], "/") {
		c.p.add("%s: prometheus.io/path %q must be an absolute path", id, t.Annotations["prometheus.io/path"])
	}
}

// selected returns the workloads whose pod labels a selector matches.
func (c *checker) selected(sel map[string]string) []Workload {
	var out []Workload
	if len(sel) == 0 {
		return nil
	}
	for _, w := range c.s.Workloads() {
		if labels.SelectorFromSet(sel).Matches(labels.Set(w.Template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func (c *checker) services() {
	for _, svc := range c.s.Services() {
		id := "Service " + svc.Name
		ws := c.selected(svc.Spec.Selector)
		if len(ws) == 0 {
			c.p.add("%s: selector %v matches no pod template", id, svc.Spec.Selector)
			continue
		}
		for _, sp := range svc.Spec.Ports {
			tp := sp.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(sp.Port)
			}
			for _, w := range ws {
				found := false
				for i := range w.Template.Spec.Containers {
					if _, ok := containerPort(&w.Template.Spec.Containers[i], tp); ok {
						found = true
					}
				}
				if !found {
					c.p.add("%s: targetPort %s is not a port of %s", id, tp.String(), w.ID())
				}
			}
		}
	}
	for _, st := range c.s.StatefulSets() {
		svc := c.s.Service(c.ns, st.Spec.ServiceName)
		if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			c.p.add("StatefulSet %s: serviceName %q must be a headless Service", st.Name, st.Spec.ServiceName)
		}
	}
}

// serviceAddr resolves host:port to a Service of this namespace.
func (c *checker) serviceAddr(hostport string) (*corev1.Service, error) {
	return serviceAddr(c.s, c.ns, hostport)
}

// serviceAddr resolves host:port to a Service of namespace ns.
func serviceAddr(s *Set, ns, hostport string) (*corev1.Service, error) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return nil, fmt.Errorf("%q is not host:port", hostport)
	}
	host, portS := hostport[:i], hostport[i+1:]
	name := host
	for _, suffix := range []string{"." + ns + ".svc.cluster.local", "." + ns + ".svc", "." + ns} {
		if strings.HasSuffix(host, suffix) {
			name = strings.TrimSuffix(host, suffix)
			break
		}
	}
	if strings.Contains(name, ".") {
		return nil, fmt.Errorf("host %q is not a Service of namespace %s", host, ns)
	}
	svc := s.Service(ns, name)
	if svc == nil {
		return nil, fmt.Errorf("no Service %q", name)
	}
	port, _ := strconv.Atoi(portS)
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) == port {
			return svc, nil
		}
	}
	return nil, fmt.Errorf("Service %s has no port %s", name, portS)
}

func pulseContainer(d *appsv1.Deployment) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == d.Name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

// source is where a variable's value comes from.
type source struct{ kind, name, key string }

// settings gathers, across the Pulse services, where their settings come
// from, so that checks can compare the services.
type settings struct {
	usedKeys map[string]map[string]bool   // ConfigMap -> keys read by some service
	sources  map[string]map[source]bool   // variable -> sources across services
	resolved map[string]map[string]string // service -> its environment
}

func (s *settings) useKey(cm, key string) {
	if s.usedKeys[cm] == nil {
		s.usedKeys[cm] = map[string]bool{}
	}
	s.usedKeys[cm][key] = true
}

// pulseServices checks each Pulse Deployment against internal/config, then
// what the services must share.
func (c *checker) pulseServices() {
	acc := &settings{usedKeys: map[string]map[string]bool{}, sources: map[string]map[source]bool{}, resolved: map[string]map[string]string{}}
	for _, svc := range PulseServices {
		c.pulseService(svc, acc)
	}
	c.oneSourcePerSetting(acc.sources)
	c.sharedSettings(acc.resolved)
	c.configKeysRead(acc.usedKeys)
}

func (c *checker) pulseService(svc string, acc *settings) {
	d := c.s.Deployment(c.ns, svc)
	if d == nil {
		c.p.add("Deployment %s is missing", svc)
		return
	}
	id := "Deployment " + svc
	ctr := pulseContainer(d)
	if ctr == nil {
		c.p.add("%s: no container named %s", id, svc)
		return
	}
	env, from := c.resolveEnv(id, svc, d, ctr, acc)
	for name, src := range from {
		if acc.sources[name] == nil {
			acc.sources[name] = map[source]bool{}
		}
		acc.sources[name][src] = true
	}
	c.envSources(id, svc, from)
	acc.resolved[svc] = env
	cfg, err := config.Load(svc, func(k string) string { return env[k] })
	if err != nil {
		c.p.add("%s: internal/config rejects the settings: %v", id, err)
		return
	}
	if svc == config.Analyzer || c.shards == 0 {
		c.shards = cfg.Shards
	}
	port, _ := strconv.Atoi(cfg.HTTPAddr[strings.LastIndexByte(cfg.HTTPAddr, ':')+1:])
	c.listensOnContainerPort(id, ctr, cfg.HTTPAddr, port)
	c.pulseProbes(id, ctr, port)
	c.pulseScraped(id, d, port)
	c.redisThroughService(id, cfg.RedisAddr)
	c.gracePeriod(id, svc, d, ctr, cfg)
}

// envResolver builds a Pulse container's environment as the kubelet does
// and records where each variable comes from. Every variable must be one
// the service reads.
type envResolver struct {
	c       *checker
	id, svc string
	reads   map[string]bool
	values  map[string]string
	from    map[string]source
	acc     *settings
}

// resolveEnv returns a Pulse container's environment and the source of
// each variable: envFrom first, env entries override it.
func (c *checker) resolveEnv(id, svc string, d *appsv1.Deployment, ctr *corev1.Container, acc *settings) (map[string]string, map[string]source) {
	r := &envResolver{c: c, id: id, svc: svc, reads: map[string]bool{}, values: map[string]string{}, from: map[string]source{}, acc: acc}
	for _, n := range config.VarsFor(svc) {
		r.reads[n] = true
	}
	r.envFrom(ctr.EnvFrom)
	r.env(d, ctr.Env)
	return r.values, r.from
}

func (r *envResolver) set(name, value string, src source) {
	if !r.reads[name] {
		r.c.p.add("%s: env %s (from %s %s) is not read by %s (internal/config.VarsFor)", r.id, name, src.kind, src.name, r.svc)
	}
	r.values[name], r.from[name] = value, src
}

// envFrom may only name ConfigMaps (secrets go through secretKeyRef).
func (r *envResolver) envFrom(efs []corev1.EnvFromSource) {
	for _, ef := range efs {
		if ef.ConfigMapRef == nil {
			r.c.p.add("%s: envFrom may only name ConfigMaps (secrets go through secretKeyRef)", r.id)
			continue
		}
		cm := r.c.s.ConfigMap(r.c.ns, ef.ConfigMapRef.Name)
		if cm == nil {
			r.c.p.add("%s: envFrom ConfigMap %s does not exist", r.id, ef.ConfigMapRef.Name)
			continue
		}
		if r.acc.usedKeys[cm.Name] == nil {
			r.acc.usedKeys[cm.Name] = map[string]bool{} // its keys must all be read
		}
		for k, v := range cm.Data {
			r.set(ef.Prefix+k, v, source{"ConfigMap", cm.Name, k})
			if r.reads[ef.Prefix+k] {
				r.acc.useKey(cm.Name, k)
			}
		}
	}
}

// env entries: none set twice, none overriding envFrom (one setting, one
// place), and only value sources the check can resolve.
func (r *envResolver) env(d *appsv1.Deployment, entries []corev1.EnvVar) {
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.Name] {
			r.c.p.add("%s: env %s set twice", r.id, e.Name)
		}
		seen[e.Name] = true
		if prev, dup := r.from[e.Name]; dup {
			r.c.p.add("%s: env %s overrides the value from %s %s", r.id, e.Name, prev.kind, prev.name)
		}
		switch {
		case e.ValueFrom == nil:
			r.set(e.Name, e.Value, source{"value", "", ""})
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, _ := r.c.configMapKey(ref.Name, ref.Key)
			r.set(e.Name, v, source{"ConfigMap", ref.Name, ref.Key})
			r.acc.useKey(ref.Name, ref.Key)
		case e.ValueFrom.SecretKeyRef != nil:
			r.set(e.Name, secretPlaceholder(e.Name), source{"Secret", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key})
		case e.ValueFrom.FieldRef != nil:
			r.set(e.Name, d.Name+"-5d8f7c9b6d-x2x7q", source{"fieldRef", e.ValueFrom.FieldRef.FieldPath, ""})
		default:
			r.c.p.add("%s: env %s: unsupported valueFrom", r.id, e.Name)
		}
	}
}

// secretPlaceholder stands for the value of a variable taken from a
// Secret (not in git), in the shape internal/config expects.
func secretPlaceholder(name string) string {
	if name == "ALERTMANAGER_URL" { // credentials are why it would be in a Secret
		return "http://pulse:placeholder-secret@alertmanager.example:9093"
	}
	return "placeholder-secret"
}

// envSources: the required variables are set, each from where it must
// come (the password from a Secret, SHARDS from the shared ConfigMap key,
// the analyzer's CONSUMER_NAME from its pod name).
func (c *checker) envSources(id, svc string, from map[string]source) {
	for _, req := range []string{"REDIS_ADDR", "REDIS_PASSWORD", "SHARDS"} {
		if _, ok := from[req]; !ok {
			c.p.add("%s: required env %s is not set", id, req)
		}
	}
	if src, ok := from["REDIS_PASSWORD"]; ok && src.kind != "Secret" {
		c.p.add("%s: REDIS_PASSWORD must come from a Secret, not %s", id, src.kind)
	}
	if src, ok := from["SHARDS"]; ok && (src.kind != "ConfigMap" || src.key != "SHARDS") {
		c.p.add("%s: SHARDS must come from the shared ConfigMap key SHARDS", id)
	}
	if svc == config.Analyzer {
		if src := from["CONSUMER_NAME"]; src.kind != "fieldRef" || src.name != "metadata.name" {
			c.p.add("%s: CONSUMER_NAME must be set from fieldRef metadata.name", id)
		}
	}
}

func (c *checker) listensOnContainerPort(id string, ctr *corev1.Container, addr string, port int) {
	if _, ok := containerPort(ctr, intstr.FromInt32(int32(port))); !ok {
		c.p.add("%s: listens on %s but declares no containerPort %d", id, addr, port)
	}
}

// pulseProbes: startup and liveness ask /health, readiness /ready, all on
// the port the service listens on.
func (c *checker) pulseProbes(id string, ctr *corev1.Container, port int) {
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{
		{"startup", ctr.StartupProbe, "/health"},
		{"liveness", ctr.LivenessProbe, "/health"},
		{"readiness", ctr.ReadinessProbe, "/ready"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			c.p.add("%s: %s probe must be httpGet %s", id, p.kind, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			c.p.add("%s: %s probe path %s, want %s", id, p.kind, p.probe.HTTPGet.Path, p.path)
		}
		if got, ok := containerPort(ctr, p.probe.HTTPGet.Port); !ok || int(got) != port {
			c.p.add("%s: %s probe port %s is not the service port %d", id, p.kind, p.probe.HTTPGet.Port.String(), port)
		}
	}
}

func (c *checker) pulseScraped(id string, d *appsv1.Deployment, port int) {
	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(port) || a["prometheus.io/path"] != "/prometheus" {
		c.p.add("%s: needs annotations prometheus.io/scrape=true, port=%d, path=/prometheus", id, port)
	}
}

// redisThroughService: Redis is reached through a Service that selects the
// Redis pods.
func (c *checker) redisThroughService(id, addr string) {
	rsvc, err := c.serviceAddr(addr)
	if err != nil {
		c.p.add("%s: REDIS_ADDR %s: %v", id, addr, err)
		return
	}
	if ws := c.selected(rsvc.Spec.Selector); len(ws) != 1 || ws[0].Kind != "StatefulSet" || ws[0].Name != "redis" {
		c.p.add("%s: REDIS_ADDR Service %s does not select the redis StatefulSet", id, rsvc.Name)
	}
}

// gracePeriod: the pod gets time to finish its Redis calls (and the
// analyzer to hand over its leases) after the preStop sleep.
func (c *checker) gracePeriod(id, svc string, d *appsv1.Deployment, ctr *corev1.Container, cfg config.Config) {
	grace := int64(30)
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	need := int64(cfg.RedisTimeout/time.Second) + 10
	if svc == config.Analyzer {
		need = max(30, int64((3*cfg.LeaseTTL+cfg.RedisTimeout)/time.Second))
	}
	if ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && ctr.Lifecycle.PreStop.Sleep != nil {
		need += ctr.Lifecycle.PreStop.Sleep.Seconds
	}
	if grace < need {
		c.p.add("%s: terminationGracePeriodSeconds %d is too short (need >= %d)", id, grace, need)
	}
}

// oneSourcePerSetting: a variable several services read comes from the
// same place for all (SHARDS above all), so they cannot disagree.
func (c *checker) oneSourcePerSetting(sources map[string]map[source]bool) {
	for name, srcs := range sources {
		if len(srcs) > 1 && name != "CONSUMER_NAME" {
			var list []string
			for s := range srcs {
				list = append(list, s.kind+" "+s.name+" "+s.key)
			}
			sort.Strings(list)
			c.p.add("env %s comes from several sources %v: the services must share one", name, list)
		}
	}
}

func (c *checker) sharedSettings(resolved map[string]map[string]string) {
	for _, v := range []string{"SHARDS", "KEY_PREFIX", "REDIS_ADDR"} {
		vals := map[string]bool{}
		for _, env := range resolved {
			vals[env[v]] = true
		}
		if len(vals) > 1 {
			c.p.add("%s differs between the services: %v", v, keys(vals))
		}
	}
}

func (c *checker) configKeysRead(usedKeys map[string]map[string]bool) {
	for cmName, used := range usedKeys {
		if cm := c.s.ConfigMap(c.ns, cmName); cm != nil {
			for k := range cm.Data {
				if !used[k] {
					c.p.add("ConfigMap %s key %s is read by no service", cmName, k)
				}
			}
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RedisConf parses redis.conf directives (first word -> rest).
func RedisConf(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		out[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return out
}

// redis checks the Redis StatefulSet: durable configuration from a
// ConfigMap, data on a claim, the services' password, the exporter.
func (c *checker) redis() {
	var st *appsv1.StatefulSet
	for _, x := range c.s.StatefulSets() {
		if x.Name == "redis" {
			st = x
		}
	}
	if st == nil {
		c.p.add("StatefulSet redis is missing")
		return
	}
	spec := &st.Spec.Template.Spec
	rc := containerNamed(spec, "redis")
	if rc == nil {
		c.p.add("StatefulSet redis: no container named redis")
		return
	}
	if rc.StartupProbe == nil || rc.LivenessProbe == nil || rc.ReadinessProbe == nil {
		c.p.add("StatefulSet redis: needs startup, liveness and readiness probes")
	}
	args := append(append([]string{}, rc.Command...), rc.Args...)
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range rc.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	conf := c.redisConfFile(spec, args, mounts)
	c.redisDurable(conf)
	c.redisDataDir(st, conf["dir"], mounts)
	secret := redisPasswordSecret(rc)
	c.redisPassword(args, secret)
	c.redisExporter(st, containerNamed(spec, "exporter"), secret)
}

// containerNamed returns the pod's container of that name, or nil.
func containerNamed(spec *corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	return nil
}

// redisConfFile returns the directives of the config file named on Redis's
// command line, which must come from a mounted ConfigMap.
func (c *checker) redisConfFile(spec *corev1.PodSpec, args []string, mounts map[string]corev1.VolumeMount) map[string]string {
	var confPath string
	for _, a := range args {
		if strings.HasSuffix(a, ".conf") {
			confPath = a
		}
	}
	vm, ok := mounts[path.Dir(confPath)]
	if !ok {
		c.p.add("StatefulSet redis: config file %q is not in a mounted volume", confPath)
		return map[string]string{}
	}
	conf := map[string]string{}
	for _, v := range spec.Volumes {
		if v.Name == vm.Name && v.ConfigMap != nil {
			if cm := c.s.ConfigMap(c.ns, v.ConfigMap.Name); cm != nil {
				conf = RedisConf(cm.Data[path.Base(confPath)])
			}
		}
	}
	return conf
}

// redisDurable: every acknowledged write is in the AOF within a second,
// and Redis refuses writes rather than evicting data when full.
func (c *checker) redisDurable(conf map[string]string) {
	want := map[string]string{"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
	for k, v := range want {
		if conf[k] != v {
			c.p.add("redis.conf: %s is %q, want %q", k, conf[k], v)
		}
	}
}

// redisDataDir: the data dir is a PersistentVolumeClaim, never an emptyDir.
func (c *checker) redisDataDir(st *appsv1.StatefulSet, dir string, mounts map[string]corev1.VolumeMount) {
	if dir == "" {
		c.p.add("redis.conf: no dir")
		return
	}
	vm, ok := mounts[dir]
	if !ok {
		c.p.add("StatefulSet redis: data dir %s is not mounted", dir)
		return
	}
	for _, vct := range st.Spec.VolumeClaimTemplates {
		if vct.Name == vm.Name {
			return
		}
	}
	c.p.add("StatefulSet redis: data dir %s must be a volumeClaimTemplate (AOF must survive restarts)", dir)
}

// redisPasswordSecret names the Secret key a container's REDIS_PASSWORD
// comes from ("" if none).
func redisPasswordSecret(ctr *corev1.Container) string {
	for _, e := range ctr.Env {
		if e.Name == "REDIS_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return ""
}

// redisPassword: Redis requires the password the services are given.
func (c *checker) redisPassword(args []string, secret string) {
	pass := ""
	for i, a := range args {
		if a == "--requirepass" && i+1 < len(args) {
			pass = args[i+1]
		}
	}
	if pass != "$(REDIS_PASSWORD)" {
		c.p.add("StatefulSet redis: must start with --requirepass $(REDIS_PASSWORD)")
	}
	for _, svc := range PulseServices {
		if d := c.s.Deployment(c.ns, svc); d != nil {
			if ctr := pulseContainer(d); ctr != nil && redisPasswordSecret(ctr) != secret {
				c.p.add("Deployment %s: REDIS_PASSWORD comes from %q, Redis uses %q", svc, redisPasswordSecret(ctr), secret)
			}
		}
	}
}

// redisExporter: a pinned redis_exporter sidecar with Redis's password
// serves the pod's metrics (RedisDown needs redis_up).
func (c *checker) redisExporter(st *appsv1.StatefulSet, exporter *corev1.Container, secret string) {
	if exporter == nil {
		c.p.add("StatefulSet redis: no redis_exporter sidecar named exporter (RedisDown needs redis_up)")
		return
	}
	if !strings.Contains(exporter.Image, "redis_exporter:") {
		c.p.add("StatefulSet redis: exporter image %q is not a pinned redis_exporter", exporter.Image)
	}
	if redisPasswordSecret(exporter) != secret {
		c.p.add("StatefulSet redis: exporter REDIS_PASSWORD must be the Redis Secret")
	}
	a := st.Spec.Template.Annotations
	if _, ok := containerPort(exporter, intstr.Parse(a["prometheus.io/port"])); !ok {
		c.p.add("StatefulSet redis: prometheus.io/port must be the exporter's port")
	}
}

// scaleOwners records, per Deployment, the autoscalers that own it and
// the maximum replicas they allow.
type scaleOwners struct {
	owners map[string][]string
	maxOf  map[string]int32
}

func (o *scaleOwners) add(deployment, autoscaler string, maxReplicas int32) {
	o.owners[deployment] = append(o.owners[deployment], autoscaler)
	o.maxOf[deployment] = maxReplicas
}

// autoscalers checks each HPA and ScaledObject, then that every Pulse tier
// has exactly one, of the right kind and range.
func (c *checker) autoscalers() {
	o := &scaleOwners{owners: map[string][]string{}, maxOf: map[string]int32{}}
	for _, h := range c.s.HPAs() {
		c.hpa(h, o)
	}
	for _, so := range c.s.ScaledObjects() {
		c.scaledObject(so, o)
	}
	c.oneAutoscalerPerTier(o)
	if mx, ok := o.maxOf[config.Analyzer]; ok && c.shards > 0 && int(mx) > c.shards {
		c.p.add("analyzer autoscaler max replicas %d exceeds SHARDS=%d", mx, c.shards)
	}
	for _, svc := range []string{config.Ingest, config.API} {
		for _, a := range o.owners[svc] {
			if !strings.HasPrefix(a, "HorizontalPodAutoscaler") {
				c.p.add("Deployment %s: want a CPU HorizontalPodAutoscaler, got %s", svc, a)
			}
		}
	}
}

func (c *checker) hpa(h *autoscalingv2.HorizontalPodAutoscaler, o *scaleOwners) {
	id := "HorizontalPodAutoscaler " + h.Name
	ref := h.Spec.ScaleTargetRef
	if strings.HasPrefix(h.Name, "keda-hpa-") {
		c.p.add("%s: KEDA creates keda-hpa-* itself", id)
	}
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
		c.p.add("%s: scaleTargetRef must be an apps/v1 Deployment", id)
		return
	}
	d := c.s.Deployment(c.ns, ref.Name)
	if d == nil {
		c.p.add("%s: target Deployment %q does not exist", id, ref.Name)
		return
	}
	o.add(ref.Name, id, h.Spec.MaxReplicas)
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		c.p.add("%s: need 1 <= minReplicas <= maxReplicas", id)
	}
	if h.Spec.Behavior == nil || h.Spec.Behavior.ScaleUp == nil || h.Spec.Behavior.ScaleDown == nil {
		c.p.add("%s: needs scaleUp and scaleDown behavior", id)
	}
	if len(h.Spec.Metrics) == 0 {
		c.p.add("%s: no metrics", id)
	}
	c.cpuRequests(id, h.Spec.Metrics, d)
}

// cpuRequests: CPU utilization is relative to the requests, so every
// container of the target needs one.
func (c *checker) cpuRequests(id string, metrics []autoscalingv2.MetricSpec, d *appsv1.Deployment) {
	for _, m := range metrics {
		if m.Resource == nil || m.Resource.Name != corev1.ResourceCPU {
			continue
		}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			if _, ok := ctr.Resources.Requests[corev1.ResourceCPU]; !ok {
				c.p.add("%s: CPU utilization needs a CPU request on %s/%s", id, d.Name, ctr.Name)
			}
		}
	}
}

func (c *checker) scaledObject(so *ScaledObject, o *scaleOwners) {
	id := "ScaledObject " + so.Name
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name == "" {
		c.p.add("%s: no scaleTargetRef", id)
		return
	}
	if (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
		c.p.add("%s: scaleTargetRef must be an apps/v1 Deployment", id)
	}
	if c.s.Deployment(c.ns, ref.Name) == nil {
		c.p.add("%s: target Deployment %q does not exist", id, ref.Name)
		return
	}
	mn, mx := int32(0), int32(100) // KEDA's defaults
	if so.Spec.MinReplicaCount != nil {
		mn = *so.Spec.MinReplicaCount
	}
	if so.Spec.MaxReplicaCount != nil {
		mx = *so.Spec.MaxReplicaCount
	}
	o.add(ref.Name, id, mx)
	if mn < 1 || mn > mx {
		c.p.add("%s: need 1 <= minReplicaCount <= maxReplicaCount (an analyzer must always run)", id)
	}
	if a := so.Spec.Advanced; a == nil || a.HorizontalPodAutoscalerConfig == nil || a.HorizontalPodAutoscalerConfig.Behavior == nil {
		c.p.add("%s: needs advanced.horizontalPodAutoscalerConfig.behavior", id)
	}
	if len(so.Spec.Triggers) == 0 {
		c.p.add("%s: no triggers", id)
	}
	fallbackOK := false
	for _, tr := range so.Spec.Triggers {
		fallbackOK = c.kedaTrigger(id, tr) || fallbackOK
	}
	if so.Spec.Fallback != nil && !fallbackOK {
		c.p.add("%s: fallback needs a non-cpu trigger with metricType AverageValue", id)
	}
}

// kedaTrigger checks a trigger's metadata against what KEDA knows and
// reports whether KEDA's fallback can use the trigger.
func (c *checker) kedaTrigger(id string, tr ScaleTriggers) (fallbackOK bool) {
	spec, ok := kedaTriggerMetadata[tr.Type]
	if !ok {
		c.p.add("%s: trigger type %q is not one this check knows", id, tr.Type)
		return false
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, spec.Required...), spec.Optional...) {
		allowed[k] = true
	}
	for k := range tr.Metadata {
		if !allowed[k] {
			c.p.add("%s: trigger %s: unknown metadata key %q", id, tr.Type, k)
		}
	}
	for _, k := range spec.Required {
		if tr.Metadata[k] == "" {
			c.p.add("%s: trigger %s: metadata %s is required", id, tr.Type, k)
		}
	}
	if tr.Type == "prometheus" {
		c.prometheusTrigger(id, tr.Metadata)
	}
	return tr.Type != "cpu" && tr.Type != "memory" && (tr.MetricType == "" || tr.MetricType == "AverageValue")
}

// prometheusTrigger: KEDA, in its own namespace, reaches our Prometheus by
// its full Service name; the query uses metrics Pulse exports; the
// thresholds are numbers.
func (c *checker) prometheusTrigger(id string, md map[string]string) {
	u, err := url.Parse(md["serverAddress"])
	switch {
	case err != nil || u.Scheme != "http":
		c.p.add("%s: serverAddress %q is not an http URL", id, md["serverAddress"])
	case !strings.HasSuffix(u.Hostname(), ".svc.cluster.local") && !strings.HasSuffix(u.Hostname(), ".svc"):
		c.p.add("%s: serverAddress host %q must be fully qualified: KEDA runs in its own namespace", id, u.Hostname())
	default:
		if _, err := c.serviceAddr(u.Host); err != nil {
			c.p.add("%s: serverAddress: %v", id, err)
		}
	}
	if names, err := MetricNames(md["query"]); err != nil {
		c.p.add("%s: query: %v", id, err)
	} else {
		known := KnownSeries()
		for _, n := range names {
			if _, ok := known[n]; !ok {
				c.p.add("%s: query uses %s, which no Pulse service exports", id, n)
			}
		}
	}
	for _, k := range []string{"threshold", "activationThreshold"} {
		if v, ok := md[k]; ok {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				c.p.add("%s: %s %q is not a number", id, k, v)
			}
		}
	}
}

// oneAutoscalerPerTier: each Pulse tier has exactly one autoscaler, and
// its Deployment leaves replicas to it.
func (c *checker) oneAutoscalerPerTier(o *scaleOwners) {
	for _, svc := range PulseServices {
		switch n := len(o.owners[svc]); {
		case n == 0:
			c.p.add("Deployment %s has no autoscaler", svc)
		case n > 1:
			c.p.add("Deployment %s has several autoscalers %v: exactly one may own it", svc, o.owners[svc])
		}
		if d := c.s.Deployment(c.ns, svc); d != nil && len(o.owners[svc]) > 0 && d.Spec.Replicas != nil {
			c.p.add("Deployment %s sets replicas although %v owns it: re-applying would fight the autoscaler", svc, o.owners[svc])
		}
	}
}

func (c *checker) pdbs() {
	covered := map[string]int{}
	for _, pdb := range c.s.PDBs() {
		id := "PodDisruptionBudget " + pdb.Name
		n := 0
		for _, w := range c.s.Workloads() {
			if selectorMatches(pdb.Spec.Selector, w.Template.Labels) {
				n++
				covered[w.Name]++
			}
		}
		if n == 0 {
			c.p.add("%s: selector matches no pod template", id)
		}
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			c.p.add("%s: needs maxUnavailable or minAvailable", id)
		}
		if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal < 1 {
			c.p.add("%s: maxUnavailable < 1 blocks every node drain", id)
		}
	}
	for _, svc := range PulseServices {
		if covered[svc] != 1 {
			c.p.add("Deployment %s is covered by %d PodDisruptionBudgets, want 1", svc, covered[svc])
		}
	}
}

// IngressRoutes are the original service's URLs and where they go.
var IngressRoutes = map[string]string{
	"/metrics":   config.Ingest,
	"/analyze":   config.API,
	"/anomalies": config.API,
	"/alerts":    config.API,
	"/devices":   config.API,
	"/health":    config.API,
}

func (c *checker) ingress() {
	ings := c.s.Ingresses()
	if len(ings) != 1 {
		c.p.add("want one Ingress, got %d", len(ings))
		return
	}
	ing := ings[0]
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		c.p.add("Ingress %s: ingressClassName must be nginx", ing.Name)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host == "" || ing.Spec.Rules[0].HTTP == nil {
		c.p.add("Ingress %s: want one rule with one host", ing.Name)
		return
	}
	got := map[string]string{}
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		b := p.Backend.Service
		if b == nil {
			c.p.add("Ingress %s: path %s has no Service backend", ing.Name, p.Path)
			continue
		}
		got[p.Path] = b.Name
		svc := c.s.Service(c.ns, b.Name)
		if svc == nil {
			c.p.add("Ingress %s: path %s: Service %s does not exist", ing.Name, p.Path, b.Name)
			continue
		}
		found := false
		for _, sp := range svc.Spec.Ports {
			found = found || (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
		}
		if !found {
			c.p.add("Ingress %s: path %s: Service %s has no port %v", ing.Name, p.Path, b.Name, b.Port)
		}
	}
	for p, want := range IngressRoutes {
		if got[p] != want {
			c.p.add("Ingress %s: %s goes to %q, want %q", ing.Name, p, got[p], want)
		}
	}
	for p := range got {
		if _, ok := IngressRoutes[p]; !ok {
			c.p.add("Ingress %s: unexpected path %s", ing.Name, p)
		}
	}
}

func (c *checker) rbac() {
	for _, rb := range c.s.RoleBindings() {
		found := false
		for _, r := range c.s.Roles() {
			found = found || (rb.RoleRef.Kind == "Role" && r.Name == rb.RoleRef.Name)
		}
		if !found {
			c.p.add("RoleBinding %s: Role %s does not exist", rb.Name, rb.RoleRef.Name)
		}
		for _, sub := range rb.Subjects {
			ok := false
			for _, sa := range c.s.ServiceAccounts() {
				ok = ok || (sub.Kind == "ServiceAccount" && sa.Name == sub.Name)
			}
			if !ok {
				c.p.add("RoleBinding %s: subject %s %s does not exist", rb.Name, sub.Kind, sub.Name)
			}
		}
	}
}
