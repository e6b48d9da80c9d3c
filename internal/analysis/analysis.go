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
	"slices"
	"strings"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/metric"
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
	// TagsBefore are the device's tags before the batch: the writer moves
	// the device between the shard's tag sets when State.Tags differ.
	TagsBefore []state.Tag
}

// TagsChanged reports whether the batch changed the device's tags.
func (u *Update) TagsChanged() bool { return !slices.Equal(u.TagsBefore, u.State.Tags) }

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
	// BySignal counts anomalous values per signal: rps, cpu and, all
	// named signals together, SignalNamed (metric labels never carry a
	// signal's name).
	BySignal map[string]int
	Receipts []int64 // receipt time of each applied event, Unix ns
	// Signals is what the batch did to each signal but rps (whose figures
	// are the shard's own: Processed, AnomalousEvents, the recent values),
	// for the fleet's view of one signal.
	Signals map[string]*SignalBatch
	// DroppedSignals counts values of named signals not tracked, by
	// reason (DropDeviceLimit, DropFleetLimit); DroppedTags tags not
	// tracked (MAX_FLEET_SIGNALS values per key).
	DroppedSignals map[string]int
	DroppedTags    int
}

// SignalBatch is a batch's values of one signal.
type SignalBatch struct {
	Processed  int // values applied
	Anomalies  int // anomalous values
	NewDevices int // devices whose first value of the signal it was
	IDs        []state.ID
	Values     []float64 // in stream order, with IDs
}

// Signals, as named in results and metrics.
const (
	SignalRPS = "rps"
	SignalCPU = "cpu"
	// SignalNamed labels the anomalies of all named signals together.
	SignalNamed = "named"
)

// Reasons a named signal's value is not tracked.
const (
	DropDeviceLimit = "device_limit" // the device tracks MAX_SIGNALS_PER_DEVICE signals already
	DropFleetLimit  = "fleet_limit"  // the fleet tracks MAX_FLEET_SIGNALS names already
)

// Params are the applier's settings besides the detector.
type Params struct {
	Window int          // values per window (WINDOW_SIZE)
	Score  score.Params // the anomaly score
	Alert  alert.Params // ALERT_THRESHOLD, ALERT_RECOVERY
	// MaxSignals is MAX_SIGNALS_PER_DEVICE: the most signals a device
	// tracks, rps and cpu included (0: DefaultMaxSignals).
	MaxSignals int
	// Fleet decides which new signal names and tag values the fleet
	// tracks (MAX_FLEET_SIGNALS); nil tracks all.
	Fleet Tracker
}

// Tracker says whether the fleet tracks a signal name or a tag value not
// yet tracked by the device at hand. Its answers must not depend on I/O
// done during Apply: the analyzer asks Redis before applying a batch.
type Tracker interface {
	TrackSignal(name string) bool
	TrackTag(key, value string) bool
}

// DefaultMaxSignals is MAX_SIGNALS_PER_DEVICE's default.
const DefaultMaxSignals = 32

// DefaultParams are the services' defaults for windows of window values.
func DefaultParams(window int) Params {
	return Params{Window: window, Score: score.DefaultParams(), Alert: alert.DefaultParams(), MaxSignals: DefaultMaxSignals}
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
	if p.MaxSignals == 0 {
		p.MaxSignals = DefaultMaxSignals
	}
	return &Applier{det: det, p: p}
}

// Apply applies the events of d in order to states (device id → state;
// missing devices start empty) and to recent, the shard's newest values.
// States are changed in place.
func (a *Applier) Apply(d Decoded, states map[string]*state.Device, recent *state.Recent) Result {
	res := Result{BySignal: map[string]int{}, Signals: map[string]*SignalBatch{}, DroppedSignals: map[string]int{}}
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
			u = &Update{DeviceID: ev.DeviceID, State: st, New: isNew || st.Total == 0, TagsBefore: st.Tags}
			touched[ev.DeviceID] = u
			res.Updates = append(res.Updates, u)
		}
		st.LastID = ev.ID
		st.Total++
		st.LastSeen = float64(ev.Receipt) / 1e9
		// An event without rps or cpu (named metrics only) leaves that
		// signal's newest value, z-score and score in Last as they were.
		last := st.Last
		last.Timestamp, last.Anomaly = ev.Timestamp, false
		if !ev.NoRPS {
			r := a.det.Observe(st.RPS, ev.RPS)
			last.RPS, last.ZRPS = ev.RPS, r.Z
			last.ScoreRPS = a.scoreAndAlert(&res, u, ev, state.SignalRPS, ev.RPS, r.Z)
			if r.Anomaly {
				last.Anomaly = true
				a.anomaly(&res, u, ev, SignalRPS, ev.RPS, r, last.ScoreRPS)
				st.Signals[state.SignalRPS].Anomalies++
			}
			if recent != nil {
				recent.Add(ev.ID, ev.RPS)
			}
		}
		if !ev.NoCPU {
			sb := res.signal(SignalCPU)
			if st.CPU.Len() == 0 {
				sb.NewDevices++
			}
			r := a.det.Observe(st.CPU, ev.CPU)
			last.CPU, last.ZCPU = ev.CPU, r.Z
			last.ScoreCPU = a.scoreAndAlert(&res, u, ev, state.SignalCPU, ev.CPU, r.Z)
			sb.add(ev.ID, ev.CPU, r.Anomaly)
			if r.Anomaly {
				last.Anomaly = true
				a.anomaly(&res, u, ev, SignalCPU, ev.CPU, r, last.ScoreCPU)
				st.Signals[state.SignalCPU].Anomalies++
			}
		}
		for _, m := range ev.Metrics {
			if a.applyNamed(&res, u, ev, m) {
				last.Anomaly = true
			}
		}
		if ev.Tags != nil {
			a.applyTags(&res, st, ev.Tags)
		}
		st.Last = last
		if last.Anomaly {
			st.Anomalies++
			res.AnomalousEvents++
		}
		res.Processed++
		res.Receipts = append(res.Receipts, ev.Receipt)
	}
	return res
}

// signal returns the batch's figures of signal name, created on first use.
func (r *Result) signal(name string) *SignalBatch {
	sb := r.Signals[name]
	if sb == nil {
		sb = &SignalBatch{}
		r.Signals[name] = sb
	}
	return sb
}

func (sb *SignalBatch) add(id state.ID, x float64, anomalous bool) {
	sb.Processed++
	if anomalous {
		sb.Anomalies++
	}
	sb.IDs = append(sb.IDs, id)
	sb.Values = append(sb.Values, x)
}

// anomaly records an anomalous value of signal name.
func (a *Applier) anomaly(res *Result, u *Update, ev *Event, name string, x float64, r detector.Result, score float64) {
	an := state.Anomaly{DeviceID: ev.DeviceID, Timestamp: ev.Timestamp, Signal: name, Value: x,
		ZScore: r.Z, Score: score, Mean: r.Mean, StdDev: r.StdDev, StreamID: ev.ID.String()}
	u.Anomalies = append(u.Anomalies, an)
	res.Anomalies = append(res.Anomalies, an)
	label := name
	if name != SignalRPS && name != SignalCPU {
		label = SignalNamed
	}
	res.BySignal[label]++
}

// applyNamed applies one value of a named signal exactly as rps and cpu
// are applied; a name the device or the fleet cannot track more of is
// counted, not applied. It reports whether the value is anomalous.
func (a *Applier) applyNamed(res *Result, u *Update, ev *Event, m metric.Named) bool {
	st := u.State
	sig := st.FindNamed(m.Name)
	newSignal := sig < 0
	if newSignal {
		reason := ""
		switch {
		case st.SignalCount() >= a.p.MaxSignals:
			reason = DropDeviceLimit
		case a.p.Fleet != nil && !a.p.Fleet.TrackSignal(m.Name):
			reason = DropFleetLimit
		}
		if reason != "" {
			st.DroppedSignals++
			res.DroppedSignals[reason]++
			return false
		}
		st.Named = append(st.Named, state.Named{Name: m.Name, Window: detector.NewWindow(a.p.Window)})
		sig = st.SignalCount() - 1
	}
	sb := res.signal(m.Name)
	if newSignal {
		sb.NewDevices++
	}
	r := a.det.Observe(st.Named[sig-state.NumSignals].Window, m.Value)
	sc := a.scoreAndAlert(res, u, ev, sig, m.Value, r.Z)
	n := &st.Named[sig-state.NumSignals]
	n.LastValue, n.LastZ, n.LastScore = m.Value, r.Z, sc
	sb.add(ev.ID, m.Value, r.Anomaly)
	if r.Anomaly {
		n.Anomalies++
		a.anomaly(res, u, ev, m.Name, m.Value, r, sc)
	}
	return r.Anomaly
}

// applyTags makes tags the device's, sorted by key, but for values the
// fleet does not track (counted): the latest tags win.
func (a *Applier) applyTags(res *Result, st *state.Device, tags []metric.Tag) {
	out := make([]state.Tag, 0, len(tags))
	for _, t := range tags {
		tracked := slices.Contains(st.Tags, state.Tag{Key: t.Key, Value: t.Value}) ||
			a.p.Fleet == nil || a.p.Fleet.TrackTag(t.Key, t.Value)
		if !tracked {
			res.DroppedTags++
			continue
		}
		out = append(out, state.Tag{Key: t.Key, Value: t.Value})
	}
	slices.SortFunc(out, func(x, y state.Tag) int { return strings.Compare(x.Key, y.Key) })
	if len(out) == 0 {
		out = nil
	}
	st.Tags = out
}

// scoreAndAlert scores value x of signal sig of ev's device, with the
// metric's own timestamp, steps the signal's alert and records what it
// opened or closed. It returns the score. It allocates only for a change.
func (a *Applier) scoreAndAlert(res *Result, u *Update, ev *Event, sig int, x, z float64) float64 {
	st := u.State
	s := st.Signal(sig)
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
