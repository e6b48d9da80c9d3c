// Package analysis applies a batch of stream entries to device states: it
// decodes entries, skips those already applied, runs the detector and
// collects what must be written. It does no I/O, so the analyzer, the
// tests' single-process reference and benchmarks all share it.
package analysis

import (
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/state"
	"github.com/pulse-iot/pulse/internal/stream"
)

// Entry is one stream entry as read. Values is nil for an entry that was
// deleted from the stream while pending.
type Entry struct {
	ID     string
	Values map[string]any
}

// DeadLetter is an entry that cannot be applied, with the reason.
type DeadLetter struct {
	ID     string
	Reason string
	Values map[string]any
}

// Reasons of dead letters.
const (
	ReasonMalformed = "malformed"
	ReasonMissing   = "missing"
)

// Event is a decoded entry.
type Event struct {
	ID state.ID
	stream.Event
}

// Decoded is a batch after decoding, before applying.
type Decoded struct {
	Events    []Event
	Dead      []DeadLetter
	Acks      []string // every entry's id: all of them are settled by the write
	DeviceIDs []string // distinct, in first-seen order
}

// Decode decodes entries; what cannot be decoded becomes a dead letter.
func Decode(entries []Entry) Decoded {
	d := Decoded{Events: make([]Event, 0, len(entries)), Acks: make([]string, 0, len(entries))}
	seen := make(map[string]struct{}, len(entries))
	for _, en := range entries {
		d.Acks = append(d.Acks, en.ID)
		if en.Values == nil {
			d.Dead = append(d.Dead, DeadLetter{ID: en.ID, Reason: ReasonMissing})
			continue
		}
		id, err := state.ParseID(en.ID)
		if err != nil {
			d.Dead = append(d.Dead, DeadLetter{ID: en.ID, Reason: ReasonMalformed, Values: en.Values})
			continue
		}
		ev, err := stream.Decode(en.Values)
		if err != nil {
			d.Dead = append(d.Dead, DeadLetter{ID: en.ID, Reason: ReasonMalformed, Values: en.Values})
			continue
		}
		if _, ok := seen[ev.DeviceID]; !ok {
			seen[ev.DeviceID] = struct{}{}
			d.DeviceIDs = append(d.DeviceIDs, ev.DeviceID)
		}
		d.Events = append(d.Events, Event{ID: id, Event: ev})
	}
	return d
}

// Update is one device's new state and the anomalies it produced.
type Update struct {
	DeviceID  string
	State     *state.Device
	New       bool            // first event ever of this device
	Anomalies []state.Anomaly // in stream order
}

// Result is what a batch changes.
type Result struct {
	Updates         []*Update       // devices whose state changed, in first-seen order
	Anomalies       []state.Anomaly // all devices, in stream order
	Processed       int             // events applied
	Duplicates      int             // events skipped as already applied
	AnomalousEvents int
	BySignal        map[string]int // anomalous values per signal
	Receipts        []int64        // receipt time of each applied event, Unix ns
}

// Signals, as named in results and metrics.
const (
	SignalRPS = "rps"
	SignalCPU = "cpu"
)

// Applier applies decoded batches. It is not safe for concurrent use: its
// detector keeps scratch space.
type Applier struct {
	det    detector.Detector
	window int
}

// NewApplier returns an applier scoring with det over windows of size.
func NewApplier(det detector.Detector, window int) *Applier {
	return &Applier{det: det, window: window}
}

// Apply applies the events of d in order to states (device id → state;
// missing devices start empty) and to recent, the shard's newest values.
// States are changed in place.
func (a *Applier) Apply(d Decoded, states map[string]*state.Device, recent *state.Recent) Result {
	res := Result{BySignal: map[string]int{}}
	touched := make(map[string]*Update, len(d.DeviceIDs))
	for _, ev := range d.Events {
		st := states[ev.DeviceID]
		isNew := st == nil
		if isNew {
			st = state.NewDevice(a.window)
			states[ev.DeviceID] = st
		}
		if !st.LastID.Less(ev.ID) {
			res.Duplicates++
			continue
		}
		u := touched[ev.DeviceID]
		if u == nil {
			u = &Update{DeviceID: ev.DeviceID, State: st, New: isNew || st.Total == 0}
			touched[ev.DeviceID] = u
			res.Updates = append(res.Updates, u)
		}
		rps := a.det.Observe(st.RPS, ev.RPS)
		cpu := a.det.Observe(st.CPU, ev.CPU)
		anomalous := rps.Anomaly || cpu.Anomaly
		st.LastID = ev.ID
		st.Total++
		if anomalous {
			st.Anomalies++
			res.AnomalousEvents++
		}
		st.LastSeen = float64(ev.Receipt) / 1e9
		st.Last = state.Last{Timestamp: ev.Timestamp, RPS: ev.RPS, CPU: ev.CPU, ZRPS: rps.Z, ZCPU: cpu.Z, Anomaly: anomalous}
		for _, s := range [...]struct {
			name  string
			value float64
			r     detector.Result
		}{{SignalRPS, ev.RPS, rps}, {SignalCPU, ev.CPU, cpu}} {
			if !s.r.Anomaly {
				continue
			}
			an := state.Anomaly{DeviceID: ev.DeviceID, Timestamp: ev.Timestamp, Signal: s.name, Value: s.value,
				ZScore: s.r.Z, Mean: s.r.Mean, StdDev: s.r.StdDev, StreamID: ev.ID.String()}
			u.Anomalies = append(u.Anomalies, an)
			res.Anomalies = append(res.Anomalies, an)
			res.BySignal[s.name]++
		}
		if recent != nil {
			recent.Add(ev.ID, ev.RPS)
		}
		res.Processed++
		res.Receipts = append(res.Receipts, ev.Receipt)
	}
	return res
}
