// Package logging builds the services' zap loggers.
package logging

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pulse-iot/pulse/internal/config"
)

// New returns a logger writing level and above to w, as JSON or as
// human-readable console lines.
func New(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	switch format {
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	core := zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.AddCaller()), nil
}

// Start returns the logger of a service configured by cfg, named for the
// service, and logs that it starts with its configuration (secrets
// masked by cfg's String).
func Start(cfg config.Config, w io.Writer, fields ...zap.Field) (*zap.Logger, error) {
	log, err := New(cfg.LogLevel, cfg.LogFormat, w)
	if err != nil {
		return nil, err
	}
	log = log.Named(cfg.Service).With(fields...)
	log.Info("starting", zap.Stringer("config", cfg))
	return log, nil
}
