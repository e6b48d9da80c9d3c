package main

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/results"
	"github.com/pulse-iot/pulse/internal/state"
)

// resultStore is what the handlers read.
type resultStore interface {
	Fleet(ctx context.Context) (results.Fleet, error)
	Device(ctx context.Context, id string) (*state.Device, error)
	Anomalies(ctx context.Context, deviceID string, limit int) ([]state.Anomaly, error)
	Devices(ctx context.Context, cursor string, limit int) ([]results.DeviceSummary, string, error)
}

// Paging limits of /anomalies and /devices.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

var (
	errBadDeviceID = errors.New("invalid device_id: want 1-128 characters of [A-Za-z0-9._:-]")
	errBadLimit    = errors.New("invalid limit: want a whole number from 1 to 1000")
	errBadCursor   = errors.New("invalid cursor")
	errUnavailable = errors.New("storage unavailable, retry later")
)

// fleetResponse is GET /analyze. Lag and pending are null while a shard's
// cannot be told (no consumer group on its stream, so nothing reads it;
// or Redis cannot compute the lag); lag_unknown_shards lists those
// shards. A 0 there would hide events that are never analyzed.
type fleetResponse struct {
	RollingAverage float64  `json:"rolling_average"`
	Mean           float64  `json:"mean"`
	StdDev         float64  `json:"std_dev"`
	AnomalyCount   int64    `json:"anomaly_count"`
	TotalProcessed int64    `json:"total_processed"`
	AnomalyRate    float64  `json:"anomaly_rate"`
	WindowSize     int      `json:"window_size"`
	Samples        int      `json:"samples"`
	Devices        int64    `json:"devices"`
	Lag            *int64   `json:"lag"`
	Pending        *int64   `json:"pending"`
	UnknownLag     []int    `json:"lag_unknown_shards"`
	Detectors      []string `json:"detectors"`
}

type lastEvent struct {
	Timestamp float64 `json:"timestamp"`
	RPS       float64 `json:"rps"`
	CPU       float64 `json:"cpu"`
	ZScore    float64 `json:"z_score"`
	IsAnomaly bool    `json:"is_anomaly"`
}

type signalStats struct {
	RollingAverage float64 `json:"rolling_average"`
	Mean           float64 `json:"mean"`
	StdDev         float64 `json:"std_dev"`
	ZScore         float64 `json:"z_score"`
}

type deviceResponse struct {
	DeviceID       string      `json:"device_id"`
	RollingAverage float64     `json:"rolling_average"`
	Mean           float64     `json:"mean"`
	StdDev         float64     `json:"std_dev"`
	AnomalyCount   uint64      `json:"anomaly_count"`
	TotalProcessed uint64      `json:"total_processed"`
	AnomalyRate    float64     `json:"anomaly_rate"`
	WindowSize     int         `json:"window_size"`
	Samples        int         `json:"samples"`
	LastSeen       float64     `json:"last_seen"`
	Last           lastEvent   `json:"last"`
	CPU            signalStats `json:"cpu"`
}

func handleAnalyze(store resultStore, window int, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if id, ok := c.GetQuery("device_id"); ok {
			analyzeDevice(c, store, window, log, id)
			return
		}
		f, err := store.Fleet(c.Request.Context())
		if err != nil {
			writeError(c, log, err)
			return
		}
		w := detector.NewWindow(max(len(f.Values), 1))
		w.Reset(f.Values)
		mean, sd := w.MeanStdDev()
		c.JSON(http.StatusOK, fleetResponse{
			RollingAverage: mean, Mean: mean, StdDev: sd,
			AnomalyCount: f.Anomalies, TotalProcessed: f.Processed,
			AnomalyRate: rate(uint64(f.Anomalies), uint64(f.Processed)),
			WindowSize:  window, Samples: len(f.Values),
			Devices: f.Devices, Lag: known(f.Lag, f.LagUnknown), Pending: known(f.Pending, f.PendingUnknown),
			UnknownLag: nonNil(f.LagUnknown), Detectors: nonNil(f.Detectors),
		})
	}
}

func analyzeDevice(c *gin.Context, store resultStore, window int, log *zap.Logger, id string) {
	if !metric.ValidDeviceID(id) {
		writeError(c, log, errBadDeviceID)
		return
	}
	d, err := store.Device(c.Request.Context(), id)
	if err != nil {
		writeError(c, log, err)
		return
	}
	mean, sd := d.RPS.MeanStdDev()
	cpuMean, cpuSD := d.CPU.MeanStdDev()
	c.JSON(http.StatusOK, deviceResponse{
		DeviceID: id, RollingAverage: mean, Mean: mean, StdDev: sd,
		AnomalyCount: d.Anomalies, TotalProcessed: d.Total, AnomalyRate: rate(d.Anomalies, d.Total),
		WindowSize: window, Samples: d.RPS.Len(), LastSeen: d.LastSeen,
		Last: lastEvent{Timestamp: d.Last.Timestamp, RPS: d.Last.RPS, CPU: d.Last.CPU, ZScore: d.Last.ZRPS, IsAnomaly: d.Last.Anomaly},
		CPU:  signalStats{RollingAverage: cpuMean, Mean: cpuMean, StdDev: cpuSD, ZScore: d.Last.ZCPU},
	})
}

func handleAnomalies(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		limit, err := parseLimit(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		id, byDevice := c.GetQuery("device_id")
		if byDevice && !metric.ValidDeviceID(id) {
			writeError(c, log, errBadDeviceID)
			return
		}
		list, err := store.Anomalies(c.Request.Context(), id, limit)
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"anomalies": list})
	}
}

func handleDevices(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		limit, err := parseLimit(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		cursor := c.Query("cursor")
		if cursor != "" && !metric.ValidDeviceID(cursor) {
			writeError(c, log, errBadCursor)
			return
		}
		devices, next, err := store.Devices(c.Request.Context(), cursor, limit)
		if err != nil {
			writeError(c, log, err)
			return
		}
		body := gin.H{"devices": devices}
		if next != "" {
			body["next_cursor"] = next
		}
		c.JSON(http.StatusOK, body)
	}
}

func parseLimit(c *gin.Context) (int, error) {
	s, ok := c.GetQuery("limit")
	if !ok {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, errBadLimit
	}
	return n, nil
}

// writeError maps every error to its status and JSON body, in one place;
// only the unexpected ones are logged.
func writeError(c *gin.Context, log *zap.Logger, err error) {
	switch {
	case errors.Is(err, errBadDeviceID), errors.Is(err, errBadLimit), errors.Is(err, errBadCursor):
		httpserver.Error(c, http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, results.ErrNotFound):
		httpserver.Error(c, http.StatusNotFound, "unknown device", nil)
	default:
		log.Warn("read results", zap.Error(err))
		c.Header("Retry-After", "1")
		httpserver.Error(c, http.StatusServiceUnavailable, errUnavailable.Error(), nil)
	}
}

// rate is the percentage of anomalous events, as the original reported it.
func rate(anomalies, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return math.Round(float64(anomalies)/float64(total)*100*1e6) / 1e6
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// known returns &n when no shard is unknown, else nil (JSON null).
func known(n int64, unknown []int) *int64 {
	if len(unknown) > 0 {
		return nil
	}
	return &n
}
