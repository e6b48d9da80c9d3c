// Package check validates Pulse's deployment files offline, with the real
// tools and libraries behind them:
//
//   - kustomize (sigs.k8s.io/kustomize/api/krusty, and `kubectl kustomize`
//     when the binary exists) renders deployments/k8s, its base and every
//     overlay;
//   - every rendered object is decoded strictly (unknown fields are errors)
//     into the official Kubernetes Go types through client-go's scheme; KEDA
//     ScaledObjects into a typed copy of KEDA's v1alpha1 API;
//   - cross-references (selectors, ports, probes, env vars against
//     internal/config, ConfigMaps, Secrets, autoscaler targets) are checked;
//   - promtool / amtool check the Prometheus and Alertmanager configuration
//     and run the alert unit tests; PromQL is parsed with
//     github.com/prometheus/prometheus/promql/parser;
//   - the Dockerfiles are parsed with BuildKit's parser and compared with the
//     Makefile's build flags, the compose file is loaded with compose-go;
//   - an end-to-end test runs the three services against a private
//     redis-server and a real Prometheus on loopback.
//
// Run: cd deployments/check && GOWORK=off go test ./...
// Tests that need promtool, amtool, prometheus or redis-server skip when
// the binary is missing, and fail instead when CI is set.
package check
