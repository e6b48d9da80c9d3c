// Package state is the format of what analyzers write to Redis and the api
// reads: per-device analysis state, the fleet's recent values, anomaly
// records and alert records. Device state is binary because it is read and
// written for every event: about 110 bytes, 16 per window slot, and per
// signal its score state (150 bytes, up to 525 once the daily profile is
// full) and, once it has alerted, its alert state (89 bytes): 2.1 KiB for
// a warm device with windows of 50.
package state

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/score"
)

// ID is a Redis stream entry ID.
type ID struct{ Ms, Seq uint64 }

// ParseID parses "ms-seq".
func ParseID(s string) (ID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return ID{}, fmt.Errorf("stream id %q: want ms-seq", s)
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return ID{}, fmt.Errorf("stream id %q: want ms-seq", s)
	}
	return ID{a, b}, nil
}

func (id ID) String() string {
	return strconv.FormatUint(id.Ms, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// Less reports whether id comes before o in a stream.
func (id ID) Less(o ID) bool { return id.Ms < o.Ms || id.Ms == o.Ms && id.Seq < o.Seq }

// Last is the newest event a device sent, with its scores.
type Last struct {
	Timestamp float64 // the metric's own, Unix seconds
	RPS, CPU  float64
	ZRPS      float64
	ZCPU      float64
	ScoreRPS  float64 // anomaly scores (package score), in [0, 1]
	ScoreCPU  float64
	Anomaly   bool // any signal
}

// Signals of a device, indexes of Device.Signals and codes of the binary
// records.
const (
	SignalRPS = iota
	SignalCPU
	NumSignals
)

// SignalNames names the signals, by index: the names of results, metrics
// and the api.
var SignalNames = [NumSignals]string{"rps", "cpu"}

// Signal is one signal's anomaly score and alert state.
type Signal struct {
	Score score.State
	Alert alert.State
	// AlertSeq is the number of the signal's current or last alert (0:
	// none yet), OpenedID the stream id of the event that opened it.
	AlertSeq uint64
	OpenedID ID
	// Anomalies counts the signal's anomalous values (for rps and cpu:
	// since states carry it, version 3).
	Anomalies uint64
}

// Named is a named signal of a device ("metrics": {"temperature": …}):
// its window, its newest value with that value's z-score and anomaly
// score, and its Signal.
type Named struct {
	Name                        string
	Window                      *detector.Window
	LastValue, LastZ, LastScore float64
	Signal
}

// Tag is one of a device's tags.
type Tag struct{ Key, Value string }

// Device is one device's analysis state.
type Device struct {
	LastID    ID     // the newest entry applied; older or equal ones are duplicates
	Total     uint64 // events applied
	Anomalies uint64 // anomalous events applied
	LastSeen  float64
	Last      Last
	RPS, CPU  *detector.Window
	Signals   [NumSignals]Signal
	// AlertSeq counts the device's alerts, all signals: the next one is
	// number AlertSeq+1. With the device id it names alerts (AlertID).
	AlertSeq uint64
	// Named are the device's named signals in the order it first sent
	// them; their signal numbers (Signal, Alert) follow rps's and cpu's.
	Named []Named
	// Tags are the device's latest tags, by key.
	Tags []Tag
	// DroppedSignals counts values of named signals the device could not
	// track: beyond MAX_SIGNALS_PER_DEVICE or MAX_FLEET_SIGNALS.
	DroppedSignals uint64
}

// SignalCount is how many signals the device tracks: rps, cpu and the
// named ones, numbered from 0 in that order.
func (d *Device) SignalCount() int { return NumSignals + len(d.Named) }

// Signal returns signal number sig's score and alert state.
func (d *Device) Signal(sig int) *Signal {
	if sig < NumSignals {
		return &d.Signals[sig]
	}
	return &d.Named[sig-NumSignals].Signal
}

// SignalName returns the name of signal number sig.
func (d *Device) SignalName(sig int) string {
	if sig < NumSignals {
		return SignalNames[sig]
	}
	return d.Named[sig-NumSignals].Name
}

// FindNamed returns the number of the named signal name, or -1.
func (d *Device) FindNamed(name string) int {
	for i := range d.Named {
		if d.Named[i].Name == name {
			return NumSignals + i
		}
	}
	return -1
}

// NewDevice returns the state of a device never seen, keeping window values.
func NewDevice(window int) *Device {
	return &Device{RPS: detector.NewWindow(window), CPU: detector.NewWindow(window)}
}

// Alert returns signal sig's current or last alert as a record; ok is
// false when the signal never had one.
func (d *Device) Alert(deviceID string, sig int) (a Alert, ok bool) {
	s := d.Signal(sig)
	if s.AlertSeq == 0 {
		return Alert{}, false
	}
	e := s.Alert.Alert
	return Alert{DeviceID: deviceID, Seq: s.AlertSeq, Signal: d.SignalName(sig), Open: e.Open, OpenedID: s.OpenedID,
		OpenedAt: e.OpenedAt, ClosedAt: e.ClosedAt, Score: e.Score, Z: e.Z, Value: e.Value, Low: e.Low, High: e.High,
		Events: e.Events}, true
}

// OpenAlerts returns the device's open alerts, newest first.
func (d *Device) OpenAlerts(deviceID string) []Alert {
	var out []Alert
	for sig := range d.SignalCount() {
		if a, ok := d.Alert(deviceID, sig); ok && a.Open {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return cmp.Compare(b.Seq, a.Seq) })
	return out
}

// The device state's encoding, little endian. Version 2: the version
// byte; LastID (ms, seq), Total, Anomalies and AlertSeq as uint64;
// LastSeen and Last's Timestamp, RPS, CPU, ZRPS, ZCPU, ScoreRPS and
// ScoreCPU as float64; a flags byte (bit 0: Last.Anomaly); the rps and the
// cpu window, each a uint16 count and the values oldest first; then per
// signal (rps, cpu): a flags byte (bit 0: the signal has had an alert),
// for a signal that has had one its AlertSeq, OpenedID (ms, seq) as
// uint64 and its alert state (alert.BinarySize bytes), then its score
// state (score.State.AppendBinary, self-delimiting). Most signals never
// alert: they spend one byte on it instead of 89, and every byte of a
// state is copied several times per event on its way through Redis.
//
// Version 3 appends to version 2: rps's and cpu's Anomalies (uint64),
// DroppedSignals (uint64), the tags (a count byte, then per tag its key
// and value, each a length byte and the bytes), and the named signals (a
// uint16 count, then per signal its name as a length byte and the bytes,
// LastZ and LastScore as float64, its window as a uint16 count and the
// values (the newest is LastValue), Anomalies as a uvarint, and its alert
// and score parts as rps's and cpu's). A named signal costs about 50 bytes
// besides its window and score state: a device may have 30.
//
// Version 2, written before named signals and tags, decodes with none
// and per-signal anomaly counts from 0. Version 1, written before scores
// and alerts, is version 2 without AlertSeq, ScoreRPS, ScoreCPU and the
// signals: it still decodes, with scores and alerts starting from
// nothing.
const (
	deviceVersion   = 3
	deviceVersionV2 = 2
	deviceVersionV1 = 1
)

// BinarySize is the length of the encoded state.
func (d *Device) BinarySize() int {
	n := 1 + 5*8 + 8*8 + 1 + 2 + 8*d.RPS.Len() + 2 + 8*d.CPU.Len()
	for i := range d.Signals {
		n += d.Signals[i].binarySize()
	}
	n += 2*8 + 8 + 1 + 2
	for _, t := range d.Tags {
		n += 2 + len(t.Key) + len(t.Value)
	}
	for i := range d.Named {
		s := &d.Named[i]
		n += 1 + len(s.Name) + 2*8 + 2 + 8*s.Window.Len() + uvarintLen(s.Anomalies) + s.Signal.binarySize()
	}
	return n
}

// binarySize is the length of the signal's alert and score parts.
func (s *Signal) binarySize() int {
	n := 1 + s.Score.BinarySize()
	if s.alerted() {
		n += 3*8 + alert.BinarySize
	}
	return n
}

// alerted reports whether the signal's alert part is encoded: it has had
// an alert (or, in a state not written by the analyzer, holds any alert
// state, which is then kept as it is).
func (s *Signal) alerted() bool {
	return s.AlertSeq != 0 || s.OpenedID != (ID{}) || s.Alert != (alert.State{})
}

// AppendBinary appends the encoded state to dst.
func (d *Device) AppendBinary(dst []byte) []byte {
	dst = append(dst, deviceVersion)
	for _, u := range [...]uint64{d.LastID.Ms, d.LastID.Seq, d.Total, d.Anomalies, d.AlertSeq} {
		dst = binary.LittleEndian.AppendUint64(dst, u)
	}
	l := &d.Last
	for _, f := range [...]float64{d.LastSeen, l.Timestamp, l.RPS, l.CPU, l.ZRPS, l.ZCPU, l.ScoreRPS, l.ScoreCPU} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	var flags byte
	if l.Anomaly {
		flags = 1
	}
	dst = append(dst, flags)
	dst = appendWindow(dst, d.RPS)
	dst = appendWindow(dst, d.CPU)
	for i := range d.Signals {
		dst = d.Signals[i].appendBinary(dst)
	}
	for _, u := range [...]uint64{d.Signals[SignalRPS].Anomalies, d.Signals[SignalCPU].Anomalies, d.DroppedSignals} {
		dst = binary.LittleEndian.AppendUint64(dst, u)
	}
	dst = append(dst, byte(len(d.Tags)))
	for _, t := range d.Tags {
		dst = appendShortString(dst, t.Key)
		dst = appendShortString(dst, t.Value)
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(d.Named)))
	for i := range d.Named {
		s := &d.Named[i]
		dst = appendShortString(dst, s.Name)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.LastZ))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.LastScore))
		dst = appendWindow(dst, s.Window)
		dst = binary.AppendUvarint(dst, s.Anomalies)
		dst = s.Signal.appendBinary(dst)
	}
	return dst
}

func appendWindow(dst []byte, w *detector.Window) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(w.Len()))
	for i := 0; i < w.Len(); i++ {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(w.At(i)))
	}
	return dst
}

// appendShortString appends s (names, tags: at most 64 bytes) as a
// length byte and the bytes.
func appendShortString(dst []byte, s string) []byte {
	return append(append(dst, byte(len(s))), s...)
}

// appendBinary appends the signal's alert part (a flags byte, then for a
// signal that has had an alert its AlertSeq, OpenedID and alert state)
// and its score state.
func (s *Signal) appendBinary(dst []byte) []byte {
	if !s.alerted() {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		for _, u := range [...]uint64{s.AlertSeq, s.OpenedID.Ms, s.OpenedID.Seq} {
			dst = binary.LittleEndian.AppendUint64(dst, u)
		}
		dst = s.Alert.AppendBinary(dst)
	}
	return s.Score.AppendBinary(dst)
}

// ErrCorrupt is returned for bytes that are not a device state.
var ErrCorrupt = errors.New("corrupt device state")

// DecodeDevice decodes b into a state keeping window values; a state
// written with a larger window keeps its newest values. States of version
// 1 decode with zero scores and no alerts.
func DecodeDevice(b []byte, window int) (*Device, error) {
	d := NewDevice(window)
	r := reader{b: b}
	v := r.byte()
	if v != deviceVersion && v != deviceVersionV2 && v != deviceVersionV1 {
		return nil, fmt.Errorf("%w: version", ErrCorrupt)
	}
	d.LastID.Ms, d.LastID.Seq, d.Total, d.Anomalies = r.u64(), r.u64(), r.u64(), r.u64()
	if v >= deviceVersionV2 {
		d.AlertSeq = r.u64()
	}
	l := &d.Last
	d.LastSeen, l.Timestamp, l.RPS, l.CPU, l.ZRPS, l.ZCPU = r.f64(), r.f64(), r.f64(), r.f64(), r.f64(), r.f64()
	if v >= deviceVersionV2 {
		l.ScoreRPS, l.ScoreCPU = r.f64(), r.f64()
	}
	l.Anomaly = r.byte()&1 == 1
	r.window(d.RPS)
	r.window(d.CPU)
	if v >= deviceVersionV2 {
		for i := range d.Signals {
			if err := r.signal(&d.Signals[i], SignalNames[i]); err != nil {
				return nil, err
			}
		}
	}
	if v >= deviceVersion {
		d.Signals[SignalRPS].Anomalies, d.Signals[SignalCPU].Anomalies, d.DroppedSignals = r.u64(), r.u64(), r.u64()
		if n := int(r.byte()); n > 0 {
			d.Tags = make([]Tag, n)
			for i := range d.Tags {
				d.Tags[i] = Tag{Key: r.shortString(), Value: r.shortString()}
			}
		}
		if n := int(r.u16()); n > 0 && !r.err {
			d.Named = make([]Named, n)
			for i := range d.Named {
				s := &d.Named[i]
				s.Name = r.shortString()
				s.LastZ, s.LastScore = r.f64(), r.f64()
				s.Window = detector.NewWindow(window)
				r.window(s.Window)
				if n := s.Window.Len(); n > 0 {
					s.LastValue = s.Window.At(n - 1)
				}
				s.Anomalies = r.uvarint()
				if err := r.signal(&s.Signal, s.Name); err != nil {
					return nil, err
				}
				if r.err {
					break
				}
			}
		}
	}
	if r.err || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: length", ErrCorrupt)
	}
	return d, nil
}

// window reads a window's count and values into w.
func (r *reader) window(w *detector.Window) {
	var buf [64]float64
	n := int(r.u16())
	vals := buf[:0]
	for i := 0; i < n && !r.err; i++ {
		vals = append(vals, r.f64())
	}
	w.Reset(vals)
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) { // only the shortest form is written
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func (r *reader) shortString() string { return string(r.take(int(r.byte()))) }

// signal reads a signal's alert and score parts (Signal.appendBinary).
func (r *reader) signal(s *Signal, name string) error {
	switch r.byte() {
	case 0:
	case 1:
		s.AlertSeq, s.OpenedID.Ms, s.OpenedID.Seq = r.u64(), r.u64(), r.u64()
		a, err := alert.Decode(r.take(alert.BinarySize))
		if err != nil && !r.err {
			return fmt.Errorf("%w: %s alert: %v", ErrCorrupt, name, err)
		}
		s.Alert = a
	default:
		return fmt.Errorf("%w: %s flags", ErrCorrupt, name)
	}
	if r.err {
		return nil // reported as a length error
	}
	st, n, err := score.DecodePrefix(r.b)
	if err != nil {
		return fmt.Errorf("%w: %s score: %v", ErrCorrupt, name, err)
	}
	s.Score = st
	r.take(n)
	return nil
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) take(n int) []byte {
	if len(r.b) < n {
		r.err = true
		r.b = nil
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) byte() byte   { return r.take(1)[0] }
func (r *reader) u16() uint16  { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *reader) u64() uint64  { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

// Recent is a shard's newest values of rps, oldest first, with their
// stream IDs so that the api can merge shards into the fleet's window.
type Recent struct {
	IDs  []ID
	RPS  []float64
	Size int // values kept
}

// Add appends one value, dropping the oldest beyond Size (at least 1).
func (r *Recent) Add(id ID, rps float64) {
	if r.Size < 1 {
		r.Size = 1
	}
	if len(r.IDs) >= r.Size {
		copy(r.IDs, r.IDs[1:])
		copy(r.RPS, r.RPS[1:])
		r.IDs, r.RPS = r.IDs[:r.Size-1], r.RPS[:r.Size-1]
	}
	r.IDs = append(r.IDs, id)
	r.RPS = append(r.RPS, rps)
}

// AppendBinary appends the encoded values to dst.
func (r *Recent) AppendBinary(dst []byte) []byte {
	for i := range r.IDs {
		dst = binary.LittleEndian.AppendUint64(dst, r.IDs[i].Ms)
		dst = binary.LittleEndian.AppendUint64(dst, r.IDs[i].Seq)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.RPS[i]))
	}
	return dst
}

// DecodeRecent decodes what AppendBinary wrote, keeping the newest size.
func DecodeRecent(b []byte, size int) (*Recent, error) {
	if len(b)%24 != 0 {
		return nil, fmt.Errorf("%w: recent values length %d", ErrCorrupt, len(b))
	}
	r := &Recent{Size: size}
	rd := reader{b: b}
	for len(rd.b) > 0 {
		r.Add(ID{rd.u64(), rd.u64()}, rd.f64())
	}
	return r, nil
}

// Anomaly is one anomalous signal value, as the api serves it.
type Anomaly struct {
	DeviceID  string  `json:"device_id"`
	Timestamp float64 `json:"timestamp"`
	Signal    string  `json:"signal"`
	Value     float64 `json:"value"`
	ZScore    float64 `json:"z_score"`
	Score     float64 `json:"score"` // the value's anomaly score
	Mean      float64 `json:"mean"`
	StdDev    float64 `json:"std_dev"`
	StreamID  string  `json:"stream_id"`
}

// Anomaly records are binary, about 70 bytes where their JSON took about
// 230: each device keeps its last 1000, so they are most of a busy
// device's memory. Layout of version 3: version, signal code, stream id
// (ms, seq), then timestamp, value, z, mean, σ and score as float64, for
// a named signal (code namedCode) its name as a length byte and the
// bytes, then the device id. Version 2 knows only rps and cpu; version 1
// is version 2 without the score (it reads as 0), as are the JSON records
// of earlier versions.
const (
	anomalyVersion   = 3
	anomalyVersionV2 = 2
	anomalyVersionV1 = 1
)

// namedCode is the signal code of a named signal, whose name follows.
const namedCode = 254

// signalCode is the code of the signal named name: rps's and cpu's
// index, else namedCode.
func signalCode(name string) byte {
	for i, n := range SignalNames {
		if n == name {
			return byte(i)
		}
	}
	return namedCode
}

// appendSignalName appends the name of a named signal (code namedCode).
func appendSignalName(dst []byte, code byte, name string) []byte {
	if code != namedCode {
		return dst
	}
	return appendShortString(dst, name)
}

// readSignalName reads the name of the signal of code, from SignalNames or
// the record.
func (r *reader) signalName(code byte) (string, bool) {
	switch {
	case int(code) < NumSignals:
		return SignalNames[code], true
	case code == namedCode:
		name := r.shortString()
		return name, !r.err && name != "" && signalCode(name) == namedCode
	}
	return "", false
}

// AppendBinary appends the record's binary form to dst.
func (a Anomaly) AppendBinary(dst []byte) []byte {
	id, _ := ParseID(a.StreamID) // written by the analyzer: always well formed
	code := signalCode(a.Signal)
	dst = append(dst, anomalyVersion, code)
	dst = binary.LittleEndian.AppendUint64(dst, id.Ms)
	dst = binary.LittleEndian.AppendUint64(dst, id.Seq)
	for _, f := range [...]float64{a.Timestamp, a.Value, a.ZScore, a.Mean, a.StdDev, a.Score} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	dst = appendSignalName(dst, code, a.Signal)
	return append(dst, a.DeviceID...)
}

// DecodeAnomaly decodes what AppendBinary wrote, this version or earlier
// ones. Records written as JSON by earlier versions are read too.
func DecodeAnomaly(b []byte) (Anomaly, error) {
	if len(b) > 0 && b[0] == '{' {
		var a Anomaly
		if err := json.Unmarshal(b, &a); err != nil {
			return Anomaly{}, fmt.Errorf("%w: anomaly record: %v", ErrCorrupt, err)
		}
		return a, nil
	}
	r := reader{b: b}
	v := r.byte()
	if v < anomalyVersionV1 || v > anomalyVersion {
		return Anomaly{}, fmt.Errorf("%w: anomaly record version", ErrCorrupt)
	}
	code := r.byte()
	id := ID{r.u64(), r.u64()}
	a := Anomaly{Timestamp: r.f64(), Value: r.f64(), ZScore: r.f64(), Mean: r.f64(), StdDev: r.f64()}
	if v >= anomalyVersionV2 {
		a.Score = r.f64()
	}
	if v < anomalyVersion && int(code) >= NumSignals {
		return Anomaly{}, fmt.Errorf("%w: anomaly record", ErrCorrupt)
	}
	name, ok := r.signalName(code)
	if r.err || !ok || len(r.b) == 0 {
		return Anomaly{}, fmt.Errorf("%w: anomaly record", ErrCorrupt)
	}
	a.Signal, a.StreamID, a.DeviceID = name, id.String(), string(r.b)
	return a, nil
}
