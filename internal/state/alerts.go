package state

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Alert is one alert episode of a device's signal (package alert), as
// recorded and served: GET /alerts' records.
type Alert struct {
	DeviceID string
	Seq      uint64 // the device's alert number, from 1 (Device.AlertSeq)
	Signal   string
	Open     bool
	OpenedID ID // the stream id of the opening event: orders the fleet's alerts
	// OpenedAt and ClosedAt are the metric timestamps (Unix seconds) of
	// the events that opened and closed the alert; ClosedAt is 0 while
	// it is open.
	OpenedAt, ClosedAt float64
	// Score, Z and Value are the opening event's; Low and High the band
	// the detector expected it in.
	Score, Z, Value float64
	Low, High       float64
	Events          uint32 // values the episode spanned so far, opening and closing ones included
}

// ID is the alert's id: "<device id>:<number>", unique in the fleet
// (device ids may hold ':', numbers never do; ParseAlertID splits at the
// last one).
func (a Alert) ID() string { return AlertID(a.DeviceID, a.Seq) }

// AlertID is the id of alert number seq of device deviceID.
func AlertID(deviceID string, seq uint64) string {
	return deviceID + ":" + strconv.FormatUint(seq, 10)
}

// ParseAlertID splits an alert id into device id and number.
func ParseAlertID(s string) (deviceID string, seq uint64, err error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("alert id %q: want <device id>:<number>", s)
	}
	seq, err = strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, fmt.Errorf("alert id %q: want <device id>:<number>", s)
	}
	return s[:i], seq, nil
}

// Alert records are binary (about 90 bytes plus the device id), as
// anomaly records are: each device keeps its last 1000. Layout, little
// endian: version, signal code, flags (bit 0: open), Seq, OpenedID (ms,
// seq) as uint64, OpenedAt, ClosedAt, Score, Z, Value, Low and High as
// float64, Events as uint32, for a named signal its name (a length byte
// and the bytes), then the device id. Version 1 knows only rps and cpu.
const (
	alertVersion    = 2
	alertVersionV1  = 1
	alertFixedBytes = 3 + 3*8 + 7*8 + 4
)

// AppendBinary appends the record's binary form to dst.
func (a Alert) AppendBinary(dst []byte) []byte {
	var flags byte
	if a.Open {
		flags = 1
	}
	code := signalCode(a.Signal)
	dst = append(dst, alertVersion, code, flags)
	for _, u := range [...]uint64{a.Seq, a.OpenedID.Ms, a.OpenedID.Seq} {
		dst = binary.LittleEndian.AppendUint64(dst, u)
	}
	for _, f := range [...]float64{a.OpenedAt, a.ClosedAt, a.Score, a.Z, a.Value, a.Low, a.High} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	dst = binary.LittleEndian.AppendUint32(dst, a.Events)
	dst = appendSignalName(dst, code, a.Signal)
	return append(dst, a.DeviceID...)
}

// DecodeAlert decodes what Alert.AppendBinary wrote.
func DecodeAlert(b []byte) (Alert, error) {
	if len(b) <= alertFixedBytes || (b[0] != alertVersion && b[0] != alertVersionV1) || b[2] > 1 ||
		b[0] == alertVersionV1 && b[1] >= NumSignals {
		return Alert{}, fmt.Errorf("%w: alert record", ErrCorrupt)
	}
	r := reader{b: b[3:]}
	a := Alert{Open: b[2] == 1}
	a.Seq, a.OpenedID.Ms, a.OpenedID.Seq = r.u64(), r.u64(), r.u64()
	a.OpenedAt, a.ClosedAt, a.Score, a.Z, a.Value, a.Low, a.High = r.f64(), r.f64(), r.f64(), r.f64(), r.f64(), r.f64(), r.f64()
	a.Events = binary.LittleEndian.Uint32(r.take(4))
	name, ok := r.signalName(b[1])
	if !ok || len(r.b) == 0 {
		return Alert{}, fmt.Errorf("%w: alert record", ErrCorrupt)
	}
	a.Signal, a.DeviceID = name, string(r.b)
	return a, nil
}
