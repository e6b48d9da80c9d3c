// Package state is the format of what analyzers write to Redis and the api
// reads: per-device analysis state, the fleet's recent values and anomaly
// records. Device state is binary (about 100 bytes plus 16 per window slot)
// because it is read and written for every event.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pulse-iot/pulse/internal/detector"
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
	Anomaly   bool // any signal
}

// Device is one device's analysis state.
type Device struct {
	LastID    ID     // the newest entry applied; older or equal ones are duplicates
	Total     uint64 // events applied
	Anomalies uint64 // anomalous events applied
	LastSeen  float64
	Last      Last
	RPS, CPU  *detector.Window
}

// NewDevice returns the state of a device never seen, keeping window values.
func NewDevice(window int) *Device {
	return &Device{RPS: detector.NewWindow(window), CPU: detector.NewWindow(window)}
}

const deviceVersion = 1

// BinarySize is the length of the encoded state.
func (d *Device) BinarySize() int {
	return 1 + 4*8 + 6*8 + 1 + 2 + 8*d.RPS.Len() + 2 + 8*d.CPU.Len()
}

// AppendBinary appends the encoded state to dst.
func (d *Device) AppendBinary(dst []byte) []byte {
	dst = append(dst, deviceVersion)
	for _, u := range []uint64{d.LastID.Ms, d.LastID.Seq, d.Total, d.Anomalies} {
		dst = binary.LittleEndian.AppendUint64(dst, u)
	}
	for _, f := range []float64{d.LastSeen, d.Last.Timestamp, d.Last.RPS, d.Last.CPU, d.Last.ZRPS, d.Last.ZCPU} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	var flags byte
	if d.Last.Anomaly {
		flags = 1
	}
	dst = append(dst, flags)
	for _, w := range []*detector.Window{d.RPS, d.CPU} {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(w.Len()))
		for i := 0; i < w.Len(); i++ {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(w.At(i)))
		}
	}
	return dst
}

// ErrCorrupt is returned for bytes that are not a device state.
var ErrCorrupt = errors.New("corrupt device state")

// DecodeDevice decodes b into a state keeping window values; a state
// written with a larger window keeps its newest values.
func DecodeDevice(b []byte, window int) (*Device, error) {
	d := NewDevice(window)
	r := reader{b: b}
	if r.byte() != deviceVersion {
		return nil, fmt.Errorf("%w: version", ErrCorrupt)
	}
	d.LastID.Ms, d.LastID.Seq, d.Total, d.Anomalies = r.u64(), r.u64(), r.u64(), r.u64()
	d.LastSeen, d.Last.Timestamp, d.Last.RPS, d.Last.CPU, d.Last.ZRPS, d.Last.ZCPU = r.f64(), r.f64(), r.f64(), r.f64(), r.f64(), r.f64()
	d.Last.Anomaly = r.byte()&1 == 1
	var buf [64]float64
	for _, w := range []*detector.Window{d.RPS, d.CPU} {
		n := int(r.u16())
		vals := buf[:0]
		for i := 0; i < n; i++ {
			vals = append(vals, r.f64())
		}
		w.Reset(vals)
	}
	if r.err || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: length", ErrCorrupt)
	}
	return d, nil
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
	Mean      float64 `json:"mean"`
	StdDev    float64 `json:"std_dev"`
	StreamID  string  `json:"stream_id"`
}

// Anomaly records are binary, about 60 bytes where their JSON took about
// 220: each device keeps its last 1000, so they are most of a busy
// device's memory. Layout: version, signal, stream id (ms, seq), then
// timestamp, value, z, mean and σ as float64, then the device id.
const anomalyVersion = 1

// Signal codes of the binary record.
var signalCodes = []string{"rps", "cpu"}

// AppendBinary appends the record's binary form to dst.
func (a Anomaly) AppendBinary(dst []byte) []byte {
	id, _ := ParseID(a.StreamID) // written by the analyzer: always well formed
	sig := byte(255)
	for i, name := range signalCodes {
		if name == a.Signal {
			sig = byte(i)
		}
	}
	dst = append(dst, anomalyVersion, sig)
	dst = binary.LittleEndian.AppendUint64(dst, id.Ms)
	dst = binary.LittleEndian.AppendUint64(dst, id.Seq)
	for _, f := range []float64{a.Timestamp, a.Value, a.ZScore, a.Mean, a.StdDev} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	return append(dst, a.DeviceID...)
}

// DecodeAnomaly decodes what AppendBinary wrote. Records written as JSON
// by earlier versions are read too.
func DecodeAnomaly(b []byte) (Anomaly, error) {
	if len(b) > 0 && b[0] == '{' {
		var a Anomaly
		if err := json.Unmarshal(b, &a); err != nil {
			return Anomaly{}, fmt.Errorf("%w: anomaly record: %v", ErrCorrupt, err)
		}
		return a, nil
	}
	r := reader{b: b}
	if r.byte() != anomalyVersion {
		return Anomaly{}, fmt.Errorf("%w: anomaly record version", ErrCorrupt)
	}
	sig := int(r.byte())
	id := ID{r.u64(), r.u64()}
	a := Anomaly{Timestamp: r.f64(), Value: r.f64(), ZScore: r.f64(), Mean: r.f64(), StdDev: r.f64()}
	if r.err || sig >= len(signalCodes) || len(r.b) == 0 {
		return Anomaly{}, fmt.Errorf("%w: anomaly record", ErrCorrupt)
	}
	a.Signal, a.StreamID, a.DeviceID = signalCodes[sig], id.String(), string(r.b)
	return a, nil
}
