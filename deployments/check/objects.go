package check

import (
	"errors"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
)

// KEDAScaledObject is the GroupVersionKind of KEDA's ScaledObject.
var KEDAScaledObject = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}

// Object is one rendered manifest, decoded into its Go type.
type Object struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
	Obj       any // *appsv1.Deployment, ..., or *ScaledObject
}

// ID names the object for messages.
func (o Object) ID() string {
	return fmt.Sprintf("%s %s/%s", o.GVK.Kind, o.Namespace, o.Name)
}

// Set is a rendered kustomization.
type Set struct {
	Objects []Object
}

var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// DecodeStrict decodes every document of a rendered stream into the
// official Kubernetes types (client-go's scheme, strict: unknown or
// duplicate fields are errors) or, for KEDA, into ScaledObject. It also
// validates each object's metadata with apimachinery's ObjectMeta rules.
func DecodeStrict(stream []byte) (*Set, []error) {
	docs, err := SplitDocs(stream)
	if err != nil {
		return nil, []error{err}
	}
	set := &Set{}
	var errs []error
	for i, doc := range docs {
		var tm metav1.TypeMeta
		if err := kjson.UnmarshalCaseSensitivePreserveInts(doc, &tm); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		gvk := tm.GroupVersionKind()
		var obj any
		var meta metav1.Object
		if gvk == KEDAScaledObject {
			so := &ScaledObject{}
			strict, err := kjson.UnmarshalStrict(doc, so, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
			if err == nil && len(strict) > 0 {
				err = errors.Join(strict...)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("document %d (%s): %w", i, gvk, err))
				continue
			}
			obj, meta = so, so
		} else {
			ro, got, err := strictDecoder.Decode(doc, nil, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("document %d (%s): %w", i, gvk, err))
				continue
			}
			gvk = *got
			m, ok := ro.(metav1.Object)
			if !ok {
				errs = append(errs, fmt.Errorf("document %d (%s): no object metadata", i, gvk))
				continue
			}
			obj, meta = ro, m
		}
		namespaced := gvk.Kind != "Namespace" && gvk.Kind != "ClusterRole" && gvk.Kind != "ClusterRoleBinding"
		om := objectMeta(meta)
		for _, e := range apivalidation.ValidateObjectMeta(&om, namespaced, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata")) {
			errs = append(errs, fmt.Errorf("%s %s: %v", gvk.Kind, meta.GetName(), e))
		}
		set.Objects = append(set.Objects, Object{GVK: gvk, Namespace: meta.GetNamespace(), Name: meta.GetName(), Obj: obj})
	}
	sort.SliceStable(set.Objects, func(i, j int) bool { return set.Objects[i].ID() < set.Objects[j].ID() })
	return set, errs
}

func objectMeta(m metav1.Object) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.GetName(), Namespace: m.GetNamespace(), GenerateName: m.GetGenerateName(),
		Labels: m.GetLabels(), Annotations: m.GetAnnotations(),
	}
}

// Typed accessors.

func (s *Set) Deployments() []*appsv1.Deployment     { return typed[*appsv1.Deployment](s) }
func (s *Set) StatefulSets() []*appsv1.StatefulSet   { return typed[*appsv1.StatefulSet](s) }
func (s *Set) Services() []*corev1.Service           { return typed[*corev1.Service](s) }
func (s *Set) ConfigMaps() []*corev1.ConfigMap       { return typed[*corev1.ConfigMap](s) }
func (s *Set) Secrets() []*corev1.Secret             { return typed[*corev1.Secret](s) }
func (s *Set) PVCs() []*corev1.PersistentVolumeClaim { return typed[*corev1.PersistentVolumeClaim](s) }
func (s *Set) ServiceAccounts() []*corev1.ServiceAccount {
	return typed[*corev1.ServiceAccount](s)
}
func (s *Set) HPAs() []*autoscalingv2.HorizontalPodAutoscaler {
	return typed[*autoscalingv2.HorizontalPodAutoscaler](s)
}
func (s *Set) PDBs() []*policyv1.PodDisruptionBudget { return typed[*policyv1.PodDisruptionBudget](s) }
func (s *Set) Ingresses() []*networkingv1.Ingress    { return typed[*networkingv1.Ingress](s) }
func (s *Set) Roles() []*rbacv1.Role                 { return typed[*rbacv1.Role](s) }
func (s *Set) RoleBindings() []*rbacv1.RoleBinding   { return typed[*rbacv1.RoleBinding](s) }
func (s *Set) ScaledObjects() []*ScaledObject        { return typed[*ScaledObject](s) }
func (s *Set) Namespaces() []*corev1.Namespace       { return typed[*corev1.Namespace](s) }

func typed[T any](s *Set) []T {
	var out []T
	for _, o := range s.Objects {
		if t, ok := o.Obj.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// Workload is a pod template with its owner.
type Workload struct {
	Kind, Namespace, Name string
	Selector              *metav1.LabelSelector
	Template              *corev1.PodTemplateSpec
	StatefulSet           *appsv1.StatefulSet // for volumeClaimTemplates
}

// ID names the workload for messages.
func (w Workload) ID() string { return w.Kind + " " + w.Namespace + "/" + w.Name }

// Workloads returns every Deployment's and StatefulSet's pod template.
func (s *Set) Workloads() []Workload {
	var out []Workload
	for _, d := range s.Deployments() {
		out = append(out, Workload{"Deployment", d.Namespace, d.Name, d.Spec.Selector, &d.Spec.Template, nil})
	}
	for _, st := range s.StatefulSets() {
		out = append(out, Workload{"StatefulSet", st.Namespace, st.Name, st.Spec.Selector, &st.Spec.Template, st})
	}
	return out
}

// findWorkload returns the workload of that kind, namespace and name.
func findWorkload(s *Set, kind, ns, name string) (Workload, bool) {
	for _, w := range s.Workloads() {
		if w.Kind == kind && w.Namespace == ns && w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// ConfigMap returns the named ConfigMap or nil.
func (s *Set) ConfigMap(ns, name string) *corev1.ConfigMap {
	return named[*corev1.ConfigMap](s, ns, name)
}

// ConfigMapByPrefix returns the generated ConfigMap whose name is prefix
// plus kustomize's hash suffix (or exactly prefix).
func (s *Set) ConfigMapByPrefix(ns, prefix string) *corev1.ConfigMap {
	for _, c := range s.ConfigMaps() {
		if c.Namespace != ns {
			continue
		}
		if c.Name == prefix || (len(c.Name) == len(prefix)+11 && c.Name[:len(prefix)+1] == prefix+"-") {
			return c
		}
	}
	return nil
}

// Deployment returns the named Deployment or nil.
func (s *Set) Deployment(ns, name string) *appsv1.Deployment {
	return named[*appsv1.Deployment](s, ns, name)
}

// Service returns the named Service or nil.
func (s *Set) Service(ns, name string) *corev1.Service {
	return named[*corev1.Service](s, ns, name)
}

// named returns the object of type T called ns/name, or T's zero value.
func named[T any](s *Set, ns, name string) T {
	for _, o := range s.Objects {
		if t, ok := o.Obj.(T); ok && o.Namespace == ns && o.Name == name {
			return t
		}
	}
	var zero T
	return zero
}

var _ runtime.Object = (*appsv1.Deployment)(nil)
