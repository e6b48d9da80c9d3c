// Package analysis applies a batch of stream entries to device states: it
// decodes entries, skips those already applied, runs the per-value
// detector, scores each value (package score), steps each signal's alert
// (package alert) and collects what must be written. It does no I/O, so
// the analyzer, the tests' single-process reference and benchmarks all
// share it.
//
// Everything a value changes lives in the device's state, and a batch's
// states are written atomically with the acknowledgement of its entries,
// so applying a device's events gives the same states, anomalies and
// alert changes whatever the batches, analyzers, kills and takeovers.
package analysis

import (
	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/score"
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

// Update is one device's new state and what it produced.
type Update struct {
	DeviceID  string
	State     *state.Device
	New       bool            // first event ever of this device
	Anomalies []state.Anomaly // in stream order
	Alerts    []AlertChange   // in stream order
}

// AlertChange is an alert opened or closed by a value.
type AlertChange struct {
	Change alert.Change // alert.Opened or alert.Closed
	Alert  state.Alert  // the episode after the change
	// Newest is the device's newest alert number after the change
	// (state.Device.AlertSeq then): how old the alert is among the
	// device's, for the history's bound.
	Newest uint64
}

// Result is what a batch changes.
type Result struct {
	Updates         []*Update       // devices whose state changed, in first-seen order
	Anomalies       []state.Anomaly // all devices, in stream order
	Alerts          []AlertChange   // all devices, in stream order
	Processed       int             // events applied
	Duplicates      int             // events skipped as already applied
	AnomalousEvents int
	AlertsOpened    int
	AlertsClosed    int
	BySignal        map[string]int // anomalous values per signal
	Receipts        []int64        // receipt time of each applied event, Unix ns
}

// Signals, as named in results and metrics.
const (
	SignalRPS = "rps"
	SignalCPU = "cpu"
)

// Params are the applier's settings besides the detector.
type Params struct {
	Window int          // values per window (WINDOW_SIZE)
	Score  score.Params // the anomaly score
	Alert  alert.Params // ALERT_THRESHOLD, ALERT_RECOVERY
}

// DefaultParams are the services' defaults for windows of window values.
func DefaultParams(window int) Params {
	return Params{Window: window, Score: score.DefaultParams(), Alert: alert.DefaultParams()}
}

// Applier applies decoded batches. It is not safe for concurrent use: its
// detector keeps scratch space.
type Applier struct {
	det detector.Detector
	p   Params
}

// NewApplier returns an applier judging values with det and scoring and
// alerting with p.
func NewApplier(det detector.Detector, p Params) *Applier {
	return &Applier{det: det, p: p}
}

// Apply applies the events of d in order to states (device id → state;
// missing devices start empty) and to recent, the shard's newest values.
// States are changed in place.
func (a *Applier) Apply(d Decoded, states map[string]*state.Device, recent *state.Recent) Result {
	res := Result{BySignal: map[string]int{}}
	touched := make(map[string]*Update, len(d.DeviceIDs))
	for i := range d.Events {
		ev := &d.Events[i]
		st := states[ev.DeviceID]
		isNew := st == nil
		if isNew {
			st = state.NewDevice(a.p.Window)
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
		scoreRPS := a.scoreAndAlert(&res, u, ev, state.SignalRPS, ev.RPS, rps.Z)
		scoreCPU := a.scoreAndAlert(&res, u, ev, state.SignalCPU, ev.CPU, cpu.Z)
		st.Last = state.Last{Timestamp: ev.Timestamp, RPS: ev.RPS, CPU: ev.CPU, ZRPS: rps.Z, ZCPU: cpu.Z,
			ScoreRPS: scoreRPS, ScoreCPU: scoreCPU, Anomaly: anomalous}
		for _, s := range [...]struct {
			name  string
			value float64
			r     detector.Result
			score float64
		}{{SignalRPS, ev.RPS, rps, scoreRPS}, {SignalCPU, ev.CPU, cpu, scoreCPU}} {
			if !s.r.Anomaly {
				continue
			}
			an := state.Anomaly{DeviceID: ev.DeviceID, Timestamp: ev.Timestamp, Signal: s.name, Value: s.value,
				ZScore: s.r.Z, Score: s.score, Mean: s.r.Mean, StdDev: s.r.StdDev, StreamID: ev.ID.String()}
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

// scoreAndAlert scores value x of signal sig of ev's device, with the
// metric's own timestamp, steps the signal's alert and records what it
// opened or closed. It returns the score. It allocates only for a change.
func (a *Applier) scoreAndAlert(res *Result, u *Update, ev *Event, sig int, x, z float64) float64 {
	st := u.State
	s := &st.Signals[sig]
	sc := a.p.Score.Observe(&s.Score, ev.Timestamp, x)
	ch := a.p.Alert.Step(&s.Alert, alert.Input{Time: ev.Timestamp, Value: x, Score: sc.Score, Z: z, Low: sc.Low, High: sc.High})
	switch ch {
	case alert.Opened:
		st.AlertSeq++
		s.AlertSeq, s.OpenedID = st.AlertSeq, ev.ID
		res.AlertsOpened++
	case alert.Closed:
		res.AlertsClosed++
	default:
		return sc.Score
	}
	rec, _ := st.Alert(ev.DeviceID, sig)
	c := AlertChange{Change: ch, Alert: rec, Newest: st.AlertSeq}
	u.Alerts = append(u.Alerts, c)
	res.Alerts = append(res.Alerts, c)
	return sc.Score
}
