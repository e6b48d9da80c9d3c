package check

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // registers kubernetes_sd_configs
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// CheckPrometheusConfig does what `promtool check config` does, with the
// Prometheus 3 libraries (the deployed image is Prometheus 3): load the
// configuration file, then parse and validate every rule file it names.
// It exists because Debian's promtool is built without the Kubernetes
// service discovery and so rejects kubernetes_sd_configs.
func CheckPrometheusConfig(file string) (*promconfig.Config, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, err := promconfig.LoadFile(file, false, logger)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, pattern := range cfg.RuleFiles {
		matches, err := filepath.Glob(pattern)
		if err != nil || len(matches) == 0 {
			errs = append(errs, fmt.Errorf("rule_files %s matches no file", pattern))
			continue
		}
		for _, m := range matches {
			_, rerrs := rulefmt.ParseFile(m, false, model.LegacyValidation, parser.NewParser(parser.Options{}), logger)
			errs = append(errs, rerrs...)
		}
	}
	return cfg, errors.Join(errs...)
}
