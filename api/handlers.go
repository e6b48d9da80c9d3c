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
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/results"
	"github.com/pulse-iot/pulse/internal/state"
)

// resultStore is what the handlers read.
type resultStore interface {
	Fleet(ctx context.Context) (results.Fleet, error)
	Device(ctx context.Context, id string) (*state.Device, error)
	Anomalies(ctx context.Context, deviceID string, limit int) ([]state.Anomaly, error)
	Alerts(ctx context.Context, deviceID, which string, limit int) ([]state.Alert, error)
	Devices(ctx context.Context, cursor string, limit int) ([]results.DeviceSummary, string, error)
}

// Paging limits of /anomalies, /alerts and /devices.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

var (
	errBadDeviceID = errors.New("invalid device_id: want 1-128 characters of [A-Za-z0-9._:-]")
	errBadLimit    = errors.New("invalid limit: want a whole number from 1 to 1000")
	errBadCursor   = errors.New("invalid cursor")
	errBadState    = errors.New("invalid state: want open, closed or all")
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
	OpenAlerts     int64    `json:"open_alerts"`
}

type lastEvent struct {
	Timestamp float64 `json:"timestamp"`
	RPS       float64 `json:"rps"`
	CPU       float64 `json:"cpu"`
	ZScore    float64 `json:"z_score"`
	Score     float64 `json:"score"`
	IsAnomaly bool    `json:"is_anomaly"`
}

type signalStats struct {
	RollingAverage float64 `json:"rolling_average"`
	Mean           float64 `json:"mean"`
	StdDev         float64 `json:"std_dev"`
	ZScore         float64 `json:"z_score"`
	Score          float64 `json:"score"`
}

// openAlert is a device's open alert in /analyze?device_id=X.
type openAlert struct {
	ID       string  `json:"id"`
	Signal   string  `json:"signal"`
	OpenedAt float64 `json:"opened_at"`
	Score    float64 `json:"score"`
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
	OpenAlerts     []openAlert `json:"open_alerts"` // newest first
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
		httpserver.WriteJSON(c, log, http.StatusOK, fleetResponse{
			RollingAverage: mean, Mean: mean, StdDev: sd,
			AnomalyCount: f.Anomalies, TotalProcessed: f.Processed,
			AnomalyRate: rate(uint64(f.Anomalies), uint64(f.Processed)),
			WindowSize:  window, Samples: len(f.Values),
			Devices: f.Devices, Lag: known(f.Lag, f.LagUnknown), Pending: known(f.Pending, f.PendingUnknown),
			UnknownLag: nonNil(f.LagUnknown), Detectors: nonNil(f.Detectors), OpenAlerts: f.AlertsOpen,
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
	open := []openAlert{}
	for _, a := range d.OpenAlerts(id) {
		open = append(open, openAlert{ID: a.ID(), Signal: a.Signal, OpenedAt: a.OpenedAt, Score: a.Score})
	}
	httpserver.WriteJSON(c, log, http.StatusOK, deviceResponse{
		DeviceID: id, RollingAverage: mean, Mean: mean, StdDev: sd,
		AnomalyCount: d.Anomalies, TotalProcessed: d.Total, AnomalyRate: rate(d.Anomalies, d.Total),
		WindowSize: window, Samples: d.RPS.Len(), LastSeen: d.LastSeen,
		Last: lastEvent{Timestamp: d.Last.Timestamp, RPS: d.Last.RPS, CPU: d.Last.CPU, ZScore: d.Last.ZRPS, Score: d.Last.ScoreRPS,
			IsAnomaly: d.Last.Anomaly},
		CPU:        signalStats{RollingAverage: cpuMean, Mean: cpuMean, StdDev: cpuSD, ZScore: d.Last.ZCPU, Score: d.Last.ScoreCPU},
		OpenAlerts: open,
	})
}

func handleAnomalies(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, limit, err := listQuery(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		list, err := store.Anomalies(c.Request.Context(), id, limit)
		if err != nil {
			writeError(c, log, err)
			return
		}
		httpserver.WriteJSON(c, log, http.StatusOK, gin.H{"anomalies": list})
	}
}

// handleAlerts serves GET /alerts?device_id=X&state=open|closed|all&limit=N.
func handleAlerts(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, limit, err := listQuery(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		which := results.AlertsAll
		if v, ok := c.GetQuery("state"); ok {
			which = v
		}
		if which != results.AlertsAll && which != results.AlertsOpen && which != results.AlertsClosed {
			writeError(c, log, errBadState)
			return
		}
		list, err := store.Alerts(c.Request.Context(), id, which, limit)
		if err != nil {
			writeError(c, log, err)
			return
		}
		out := make([]notify.Alert, len(list))
		for i, a := range list {
			out[i] = results.AlertRecord(a)
		}
		c.JSON(http.StatusOK, gin.H{"alerts": out})
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
		httpserver.WriteJSON(c, log, http.StatusOK, body)
	}
}

// listQuery reads the query parameters the lists of anomalies and alerts
// share: limit and the optional device_id filter.
func listQuery(c *gin.Context) (deviceID string, limit int, err error) {
	if limit, err = parseLimit(c); err != nil {
		return "", 0, err
	}
	id, byDevice := c.GetQuery("device_id")
	if byDevice && !metric.ValidDeviceID(id) {
		return "", 0, errBadDeviceID
	}
	return id, limit, nil
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
	case errors.Is(err, errBadDeviceID), errors.Is(err, errBadLimit), errors.Is(err, errBadCursor), errors.Is(err, errBadState):
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
