package check

import (
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// ScrapeAuth is how a rendered kustomization guards the services' metrics.
type ScrapeAuth struct {
	Guarded []string // services whose /prometheus needs a read token
	// Where the services' read tokens and Prometheus's token come from,
	// when both are Secret keys: Prometheus's token must be one of them.
	Secret, ReadTokensKey, TokenKey string
}

// CheckScrapeAuth verifies that metrics reveal nothing to anonymous
// clients and that Prometheus can still scrape them:
//   - read tokens (READ_TOKENS or READ_TOKENS_FILE) are set on every Pulse
//     service or on none: one open /prometheus tells what the others hide;
//   - when they are set, Prometheus's job scraping the pods sends a token
//     from a file (authorization.credentials_file, never inline in a
//     ConfigMap), and that file is a mounted Secret key;
//   - any token file the configuration names is mounted (a missing file
//     fails every scrape).
func CheckScrapeAuth(s *Set) (ScrapeAuth, []string) {
	var p Problems
	var a ScrapeAuth
	var readSrc []string
	for _, svc := range PulseServices {
		d := s.Deployment("pulse", svc)
		ctr := namedContainer(d, svc)
		if ctr == nil {
			p.add("Deployment %s with container %s is missing", svc, svc)
			continue
		}
		guarded := false
		for _, e := range ctr.Env {
			switch e.Name {
			case "READ_TOKENS":
				guarded = true
			case "READ_TOKENS_FILE":
				guarded = true
				if sec, key, ok := secretFile(&d.Spec.Template.Spec, ctr, e.Value); ok {
					readSrc = append(readSrc, sec+"/"+key)
				} else {
					p.add("Deployment %s: READ_TOKENS_FILE %s is not a mounted Secret key", svc, e.Value)
				}
			}
		}
		for _, ef := range ctr.EnvFrom {
			if ef.ConfigMapRef == nil {
				continue
			}
			if cm := s.ConfigMap("pulse", ef.ConfigMapRef.Name); cm != nil {
				if _, ok := cm.Data[ef.Prefix+"READ_TOKENS"]; ok {
					p.add("Deployment %s: READ_TOKENS from ConfigMap %s: tokens belong in a Secret", svc, cm.Name)
					guarded = true
				}
			}
		}
		if guarded {
			a.Guarded = append(a.Guarded, svc)
		}
	}
	if len(a.Guarded) > 0 && len(a.Guarded) < len(PulseServices) {
		p.add("read tokens guard the metrics of %v only: every service's /prometheus must need one, or none", a.Guarded)
	}
	sort.Strings(readSrc)
	if len(readSrc) > 0 && readSrc[0] != readSrc[len(readSrc)-1] {
		p.add("the services read their tokens from different Secret keys %v", readSrc)
	}
	if len(readSrc) > 0 {
		a.Secret, a.ReadTokensKey, _ = strings.Cut(readSrc[0], "/")
	}

	prom := s.Deployment("pulse", "prometheus")
	ctr := namedContainer(prom, "prometheus")
	if ctr == nil {
		p.add("Deployment prometheus with container prometheus is missing")
		return a, p
	}
	cfgPath := ""
	for _, arg := range ctr.Args {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			cfgPath = v
		}
	}
	data, ok := configMapFile(s, &prom.Spec.Template.Spec, ctr, cfgPath)
	if !ok {
		p.add("Prometheus's configuration %q is not a mounted ConfigMap key", cfgPath)
		return a, p
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			Authorization *struct {
				Type            string `json:"type"`
				Credentials     string `json:"credentials"`
				CredentialsFile string `json:"credentials_file"`
			} `json:"authorization"`
			KubernetesSD []struct {
				Role string `json:"role"`
			} `json:"kubernetes_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		p.add("prometheus.yml: %v", err)
		return a, p
	}
	podJobs := 0
	for _, sc := range cfg.ScrapeConfigs {
		if au := sc.Authorization; au != nil {
			if au.Credentials != "" {
				p.add("prometheus.yml job %s: a token inline in a ConfigMap; use credentials_file from a Secret", sc.JobName)
			}
			if au.CredentialsFile != "" {
				sec, key, ok := secretFile(&prom.Spec.Template.Spec, ctr, au.CredentialsFile)
				if !ok {
					p.add("prometheus.yml job %s: credentials_file %s is not a mounted Secret key", sc.JobName, au.CredentialsFile)
				} else if a.Secret != "" && sec != a.Secret {
					p.add("prometheus.yml job %s: token from Secret %s, read tokens from Secret %s", sc.JobName, sec, a.Secret)
				} else {
					a.TokenKey = key
				}
			}
			if au.Type != "" && au.Type != "Bearer" {
				p.add("prometheus.yml job %s: authorization type %s, the services take Bearer", sc.JobName, au.Type)
			}
		}
		for _, sd := range sc.KubernetesSD {
			if sd.Role != "pod" {
				continue
			}
			podJobs++
			if len(a.Guarded) > 0 && (sc.Authorization == nil || sc.Authorization.CredentialsFile == "") {
				p.add("prometheus.yml job %s scrapes the pods without a token, but %v need one", sc.JobName, a.Guarded)
			}
		}
	}
	if podJobs == 0 {
		p.add("prometheus.yml has no job discovering the pods")
	}
	sort.Strings(p)
	return a, p
}

func namedContainer(d *appsv1.Deployment, name string) *corev1.Container {
	if d == nil {
		return nil
	}
	return containerNamed(&d.Spec.Template.Spec, name)
}

func secretFile(spec *corev1.PodSpec, ctr *corev1.Container, file string) (secret, key string, ok bool) {
	v, key, err := mountedFile(spec, ctr, file)
	if err != nil || v.Secret == nil || key == "" {
		return "", "", false
	}
	return v.Secret.SecretName, key, true
}

func configMapFile(s *Set, spec *corev1.PodSpec, ctr *corev1.Container, file string) (string, bool) {
	v, key, err := mountedFile(spec, ctr, file)
	if err != nil || v.ConfigMap == nil || key == "" {
		return "", false
	}
	cm := s.ConfigMap("pulse", v.ConfigMap.Name)
	if cm == nil {
		return "", false
	}
	data, ok := cm.Data[key]
	return data, ok
}
