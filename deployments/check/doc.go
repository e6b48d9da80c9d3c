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
//     internal/config, ConfigMaps, Secrets, autoscaler targets, the
//     analyzers' Alertmanagers against Prometheus's) are checked, and the
//     NetworkPolicies are evaluated as Kubernetes does;
//   - promtool and amtool check the Prometheus and Alertmanager
//     configuration and run the alert unit tests; promtool parses the
//     dashboards' and the KEDA trigger's PromQL too, and
//     github.com/prometheus/prometheus/promql/parser finds the metrics
//     each expression uses;
//   - the Dockerfiles are parsed with BuildKit's parser and compared with the
//     Makefile's build flags, the compose file is loaded with compose-go;
//   - an end-to-end test runs the three services against a private
//     redis-server and a real Prometheus on loopback, the analyzer
//     delivering device alerts to a stand-in Alertmanager.
//
// promtool, prometheus and amtool are the releases the manifests deploy
// (Prometheus v3.5.0, Alertmanager v0.28.1), built from the Go module proxy
// through the tool directives of tools/prometheus/go.mod and
// tools/alertmanager/go.mod, one module per release so that each builds
// with its release's own dependency versions; TestToolsAreDeployedReleases
// fails when an image tag and its tool differ. The first build compiles
// them (about 8 CPU minutes); go caches the executables after that.
//
// Run: cd deployments/check && GOWORK=off go test ./...
// Tests that need redis-server skip when the binary is missing, and fail
// instead when CI is set.
package check
