package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/config"
	"github.com/pulse-iot/pulse/internal/httpserver"
	"github.com/pulse-iot/pulse/internal/metric"
	"github.com/pulse-iot/pulse/internal/stream"
)

// Reasons of pulse_events_rejected_total.
const (
	reasonInvalid      = "invalid"
	reasonTooLarge     = "too_large"
	reasonUnsupported  = "unsupported_media"
	reasonTimeout      = "timeout"
	reasonUnavailable  = "unavailable"
	reasonBackpressure = "backpressure"
)

var (
	errUnsupportedMedia    = errors.New("unsupported media type: send application/json or application/x-ndjson")
	errUnsupportedEncoding = errors.New("unsupported content encoding: send identity or gzip")
	errBodyTooLarge        = errors.New("request body too large")
	errBadGzip             = errors.New("malformed gzip body")
	errReadBody            = errors.New("could not read the request body")
	errBodyTimeout         = errors.New("request body not received in time (BODY_TIMEOUT)")
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// handlePostMetrics validates a request's metrics and answers 202 only
// once every one of them is stored in Redis.
func handlePostMetrics(pub publisher, cfg config.Config, m *ingestMetrics, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		now := time.Now()
		format, err := requestFormat(c.Request)
		if err != nil {
			writeError(c, m, log, err)
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		defer bufPool.Put(buf)
		buf.Reset()
		if err := readBody(buf, c.Request, cfg.MaxBodyBytes); err != nil {
			writeError(c, m, log, err)
			return
		}
		limits := metric.Limits{Batch: cfg.MaxBatch, Metrics: cfg.MaxMetrics}
		metrics, single, err := metric.Decode(buf.Bytes(), format, now, limits, nil)
		if err != nil {
			writeError(c, m, log, err)
			return
		}
		events := make([]stream.Event, len(metrics))
		receipt := now.UnixNano()
		for i, mt := range metrics {
			events[i] = stream.NewEvent(mt, receipt)
		}
		// Not c: gin reuses its Context for later requests, and the timer
		// that ends ctx reads its parent after this handler has returned.
		// Without the client's cancellation: once queued, the events are
		// written whether or not the client is still there, so a client
		// that hangs up waits here for the outcome, and an event stored
		// is an event counted as accepted.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), cfg.RedisTimeout)
		defer cancel()
		if err := pub.Publish(ctx, events); err != nil {
			writeError(c, m, log, fmt.Errorf("%w: %w", errUnavailable, err))
			return
		}
		m.accepted.Add(float64(len(events)))
		m.requestSize.Observe(float64(len(events)))
		// Written by hand: this is the hot path, and reflection over a map
		// cost more than the rest of the response.
		out := buf.Bytes()[:0] // the body is decoded and copied into events: reuse its buffer
		if single {
			out = append(out, `{"status":"ok","metric":`...)
			out = metrics[0].AppendJSON(out)
			out = append(out, '}')
		} else {
			out = append(out, `{"status":"ok","accepted":`...)
			out = strconv.AppendInt(out, int64(len(events)), 10)
			out = append(out, '}')
		}
		c.Data(http.StatusAccepted, "application/json; charset=utf-8", out)
	}
}

var errUnavailable = errors.New("storage unavailable, retry later")

// writeError maps every error kind to its status and JSON body, in one
// place; only the unexpected ones are logged.
func writeError(c *gin.Context, m *ingestMetrics, log *zap.Logger, err error) {
	var merr *metric.Error
	switch {
	case errors.As(err, &merr):
		status, reason := http.StatusBadRequest, reasonInvalid
		if merr.Kind == metric.TooLarge {
			status, reason = http.StatusRequestEntityTooLarge, reasonTooLarge
		}
		m.rejected.WithLabelValues(reason).Inc()
		httpserver.Error(c, status, merr.Message, nonEmpty(merr.Details))
	case errors.Is(err, errUnsupportedMedia), errors.Is(err, errUnsupportedEncoding):
		m.rejected.WithLabelValues(reasonUnsupported).Inc()
		httpserver.Error(c, http.StatusUnsupportedMediaType, err.Error(), nil)
	case errors.Is(err, errBodyTooLarge):
		m.rejected.WithLabelValues(reasonTooLarge).Inc()
		httpserver.Error(c, http.StatusRequestEntityTooLarge, err.Error(), nil)
	case errors.Is(err, httpserver.ErrBodyTimeout):
		// The connection is closed after this answer: the rest of the
		// body may still be on its way.
		m.rejected.WithLabelValues(reasonTimeout).Inc()
		httpserver.Error(c, http.StatusRequestTimeout, errBodyTimeout.Error(), nil)
	case errors.Is(err, errBadGzip), errors.Is(err, errReadBody):
		m.rejected.WithLabelValues(reasonInvalid).Inc()
		httpserver.Error(c, http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, errUnavailable):
		m.rejected.WithLabelValues(reasonUnavailable).Inc()
		log.Warn("publish failed", zap.Error(err))
		c.Header("Retry-After", "1")
		httpserver.Error(c, http.StatusServiceUnavailable, errUnavailable.Error(), nil)
	default:
		log.Error("request failed", zap.Error(err))
		httpserver.Error(c, http.StatusInternalServerError, "internal error", nil)
	}
}

func nonEmpty(d []metric.FieldError) any {
	if len(d) == 0 {
		return nil
	}
	return d
}

// requestFormat picks the decoder from Content-Type; none means JSON, as
// curl users expect.
func requestFormat(r *http.Request) (metric.Format, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return metric.JSON, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, errUnsupportedMedia
	}
	switch mt {
	case "application/json":
		return metric.JSON, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return metric.NDJSON, nil
	}
	return 0, errUnsupportedMedia
}

// readBody reads the (possibly gzip-compressed) body into buf, refusing
// more than limit bytes after decompression.
func readBody(buf *bytes.Buffer, r *http.Request, limit int64) error {
	var body io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if errors.Is(err, httpserver.ErrBodyTimeout) {
			return err
		}
		if err != nil {
			return errBadGzip
		}
		defer zr.Close()
		body = zr
	default:
		return errUnsupportedEncoding
	}
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		if errors.Is(err, httpserver.ErrBodyTimeout) {
			return err
		}
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return errBodyTooLarge
		}
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errBadGzip
		}
		return fmt.Errorf("%w: %w", errReadBody, err)
	}
	if n > limit {
		return errBodyTooLarge
	}
	return nil
}
