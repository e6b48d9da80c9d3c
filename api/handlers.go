package main

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/analysis"
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

	SignalFleet(ctx context.Context, name string) (results.Fleet, error)
	SignalNames(ctx context.Context) ([]string, error)
	Tags(ctx context.Context) (map[string][]string, error)
	Group(ctx context.Context, key, value string) (results.Group, error)
	TaggedDevices(ctx context.Context, key, value, cursor string, limit int) ([]results.DeviceSummary, string, error)
	TaggedAnomalies(ctx context.Context, key, value string, limit int) ([]state.Anomaly, error)
	TaggedAlerts(ctx context.Context, key, value, which string, limit int) ([]state.Alert, error)
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
	errBadSignal   = errors.New("invalid signal: want a metric name, ^[a-z][a-z0-9_]{0,63}$")
	errBadTag      = errors.New("invalid tag: want key:value, key ^[a-z][a-z0-9_]{0,31}$ and value 1-64 characters of [A-Za-z0-9._:-]")
	errOneFilter   = errors.New("invalid query: give at most one of device_id, signal and tag")
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
	// Signal names the signal of /analyze?signal=NAME; /analyze alone
	// is rps's view and leaves it out, as it always has.
	Signal string `json:"signal,omitempty"`
}

// groupResponse is GET /analyze?tag=key:value.
type groupResponse struct {
	Tag            string  `json:"tag"`
	Devices        int64   `json:"devices"`
	TotalProcessed uint64  `json:"total_processed"`
	AnomalyCount   uint64  `json:"anomaly_count"`
	AnomalyRate    float64 `json:"anomaly_rate"`
	OpenAlerts     int64   `json:"open_alerts"`
}

// signalView is one signal of a device in /analyze?device_id=X's signals.
type signalView struct {
	RollingAverage float64 `json:"rolling_average"`
	Mean           float64 `json:"mean"`
	StdDev         float64 `json:"std_dev"`
	ZScore         float64 `json:"z_score"`
	Score          float64 `json:"score"`
	Value          float64 `json:"value"`
	Samples        int     `json:"samples"`
	AnomalyCount   uint64  `json:"anomaly_count"`
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
	// Signals has every signal the device sent, rps and cpu included.
	Signals        map[string]signalView `json:"signals"`
	Tags           map[string]string     `json:"tags"`
	DroppedSignals uint64                `json:"dropped_signals"`
}

func handleAnalyze(store resultStore, window int, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, byDevice := c.GetQuery("device_id")
		sig, bySignal := c.GetQuery("signal")
		tag, byTag := c.GetQuery("tag")
		switch {
		case count(byDevice, bySignal, byTag) > 1:
			writeError(c, log, errOneFilter)
		case byDevice:
			analyzeDevice(c, store, window, log, id)
		case byTag:
			analyzeGroup(c, store, log, tag)
		case bySignal && sig != analysis.SignalRPS:
			if !metric.ValidName(sig) {
				writeError(c, log, errBadSignal)
				return
			}
			f, err := store.SignalFleet(c.Request.Context(), sig)
			if err != nil {
				writeError(c, log, err)
				return
			}
			writeFleet(c, log, f, window, sig)
		default:
			f, err := store.Fleet(c.Request.Context())
			if err != nil {
				writeError(c, log, err)
				return
			}
			writeFleet(c, log, f, window, sig)
		}
	}
}

func count(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
}

// writeFleet answers the fleet's view of one signal: rps's (signal ""
// for /analyze alone) or another's.
func writeFleet(c *gin.Context, log *zap.Logger, f results.Fleet, window int, signal string) {
	w := detector.NewWindow(max(len(f.Values), 1))
	w.Reset(f.Values)
	mean, sd := w.MeanStdDev()
	httpserver.WriteJSON(c, log, http.StatusOK, fleetResponse{
		RollingAverage: mean, Mean: mean, StdDev: sd,
		AnomalyCount: f.Anomalies, TotalProcessed: f.Processed,
		AnomalyRate: rate(uint64(f.Anomalies), uint64(f.Processed)),
		WindowSize:  window, Samples: len(f.Values),
		Devices: f.Devices, Lag: known(f.Lag, f.LagUnknown), Pending: known(f.Pending, f.PendingUnknown),
		UnknownLag: nonNil(f.LagUnknown), Detectors: nonNil(f.Detectors), OpenAlerts: f.AlertsOpen, Signal: signal,
	})
}

func analyzeGroup(c *gin.Context, store resultStore, log *zap.Logger, tag string) {
	key, value, err := parseTag(tag)
	if err != nil {
		writeError(c, log, err)
		return
	}
	g, err := store.Group(c.Request.Context(), key, value)
	if err != nil {
		writeError(c, log, err)
		return
	}
	httpserver.WriteJSON(c, log, http.StatusOK, groupResponse{Tag: tag, Devices: g.Devices, TotalProcessed: g.Processed,
		AnomalyCount: g.Anomalies, AnomalyRate: rate(g.Anomalies, g.Processed), OpenAlerts: g.OpenAlerts})
}

// parseTag splits "key:value" at its first colon (values may hold more).
func parseTag(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, ":")
	if !ok || !metric.ValidTagKey(key) || !metric.ValidTagValue(value) {
		return "", "", errBadTag
	}
	return key, value, nil
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
	tags := make(map[string]string, len(d.Tags))
	for _, t := range d.Tags {
		tags[t.Key] = t.Value
	}
	httpserver.WriteJSON(c, log, http.StatusOK, deviceResponse{
		DeviceID: id, RollingAverage: mean, Mean: mean, StdDev: sd,
		AnomalyCount: d.Anomalies, TotalProcessed: d.Total, AnomalyRate: rate(d.Anomalies, d.Total),
		WindowSize: window, Samples: d.RPS.Len(), LastSeen: d.LastSeen,
		Last: lastEvent{Timestamp: d.Last.Timestamp, RPS: d.Last.RPS, CPU: d.Last.CPU, ZScore: d.Last.ZRPS, Score: d.Last.ScoreRPS,
			IsAnomaly: d.Last.Anomaly},
		CPU:        signalStats{RollingAverage: cpuMean, Mean: cpuMean, StdDev: cpuSD, ZScore: d.Last.ZCPU, Score: d.Last.ScoreCPU},
		OpenAlerts: open, Signals: deviceSignals(d), Tags: tags, DroppedSignals: d.DroppedSignals,
	})
}

// deviceSignals is every signal the device has sent a value of.
func deviceSignals(d *state.Device) map[string]signalView {
	out := make(map[string]signalView, d.SignalCount())
	view := func(w *detector.Window, value, z, score float64, anomalies uint64) signalView {
		mean, sd := w.MeanStdDev()
		return signalView{RollingAverage: mean, Mean: mean, StdDev: sd, ZScore: z, Score: score, Value: value,
			Samples: w.Len(), AnomalyCount: anomalies}
	}
	if d.RPS.Len() > 0 {
		out[analysis.SignalRPS] = view(d.RPS, d.Last.RPS, d.Last.ZRPS, d.Last.ScoreRPS, d.Signals[state.SignalRPS].Anomalies)
	}
	if d.CPU.Len() > 0 {
		out[analysis.SignalCPU] = view(d.CPU, d.Last.CPU, d.Last.ZCPU, d.Last.ScoreCPU, d.Signals[state.SignalCPU].Anomalies)
	}
	for _, n := range d.Named {
		out[n.Name] = view(n.Window, n.LastValue, n.LastZ, n.LastScore, n.Anomalies)
	}
	return out
}

func handleAnomalies(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := listQuery(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		var list []state.Anomaly
		if q.tagged {
			list, err = store.TaggedAnomalies(c.Request.Context(), q.tagKey, q.tagValue, q.limit)
		} else {
			list, err = store.Anomalies(c.Request.Context(), q.deviceID, q.limit)
		}
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
		q, err := listQuery(c)
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
		var list []state.Alert
		if q.tagged {
			list, err = store.TaggedAlerts(c.Request.Context(), q.tagKey, q.tagValue, which, q.limit)
		} else {
			list, err = store.Alerts(c.Request.Context(), q.deviceID, which, q.limit)
		}
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
		var devices []results.DeviceSummary
		var next string
		if tag, ok := c.GetQuery("tag"); ok {
			key, value, perr := parseTag(tag)
			if perr != nil {
				writeError(c, log, perr)
				return
			}
			devices, next, err = store.TaggedDevices(c.Request.Context(), key, value, cursor, limit)
		} else {
			devices, next, err = store.Devices(c.Request.Context(), cursor, limit)
		}
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

// list is the query the lists of anomalies and alerts share.
type list struct {
	limit            int
	deviceID         string // "": the fleet's
	tagged           bool   // the devices tagged tagKey:tagValue
	tagKey, tagValue string
}

// listQuery reads limit and the optional device_id or tag filter.
func listQuery(c *gin.Context) (q list, err error) {
	if q.limit, err = parseLimit(c); err != nil {
		return list{}, err
	}
	id, byDevice := c.GetQuery("device_id")
	tag, byTag := c.GetQuery("tag")
	switch {
	case byDevice && byTag:
		return list{}, errOneFilter
	case byDevice && !metric.ValidDeviceID(id):
		return list{}, errBadDeviceID
	case byTag:
		q.tagged = true
		if q.tagKey, q.tagValue, err = parseTag(tag); err != nil {
			return list{}, err
		}
	}
	q.deviceID = id
	return q, nil
}

// handleSignals serves GET /signals: the names of the signals the fleet
// tracks, for dashboards' selectors.
func handleSignals(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		names, err := store.SignalNames(c.Request.Context())
		if err != nil {
			writeError(c, log, err)
			return
		}
		httpserver.WriteJSON(c, log, http.StatusOK, gin.H{"signals": names})
	}
}

// handleTags serves GET /tags: the tag keys the fleet tracks and their
// values.
func handleTags(store resultStore, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		tags, err := store.Tags(c.Request.Context())
		if err != nil {
			writeError(c, log, err)
			return
		}
		httpserver.WriteJSON(c, log, http.StatusOK, gin.H{"tags": tags})
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
	case errors.Is(err, errBadDeviceID), errors.Is(err, errBadLimit), errors.Is(err, errBadCursor), errors.Is(err, errBadState),
		errors.Is(err, errBadSignal), errors.Is(err, errBadTag), errors.Is(err, errOneFilter):
		httpserver.Error(c, http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, results.ErrNotFound):
		httpserver.Error(c, http.StatusNotFound, "unknown device", nil)
	case errors.Is(err, results.ErrUnknownSignal):
		httpserver.Error(c, http.StatusNotFound, "unknown signal", nil)
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
