package state

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/score"
)

// warmDevice is a device after n events every five minutes (so a day and
// more fills every bucket of the scores' daily profiles), with windows of
// 50, an alert of rps opened and closed and one of cpu open.
func warmDevice(r *rand.Rand, n int) *Device {
	d := NewDevice(50)
	sp, ap := score.DefaultParams(), alert.DefaultParams()
	for i := 0; i < n; i++ {
		t := 1.7e9 + 300*float64(i)
		vals := [NumSignals]float64{100 + 10*r.NormFloat64(), 40 + r.Float64()}
		switch {
		case i >= n-40 && i < n-30:
			vals[SignalRPS] += 500
		case i >= n-5:
			vals[SignalCPU] = 99
		}
		d.RPS.Push(vals[SignalRPS])
		d.CPU.Push(vals[SignalCPU])
		for sig := range d.Signals {
			s := &d.Signals[sig]
			sc := sp.Observe(&s.Score, t, vals[sig])
			if ap.Step(&s.Alert, alert.Input{Time: t, Value: vals[sig], Score: sc.Score, Z: 3, Low: sc.Low, High: sc.High}) == alert.Opened {
				d.AlertSeq++
				s.AlertSeq, s.OpenedID = d.AlertSeq, ID{uint64(t * 1000), uint64(sig)}
			}
		}
		d.LastID, d.Total, d.LastSeen = ID{uint64(t * 1000), 0}, uint64(i+1), t+0.5
	}
	d.Last = Last{Timestamp: 1.5e9, RPS: 3, CPU: 4, ZRPS: -2.5, ZCPU: 0.1, ScoreRPS: 0.25, ScoreCPU: 0.75, Anomaly: true}
	return d
}

func TestDeviceRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 49, 50, 120, 400} {
		d := warmDevice(r, n)
		d.Total, d.Anomalies = r.Uint64(), r.Uint64()
		if size := len(d.AppendBinary(nil)); size != d.BinarySize() {
			t.Fatalf("n=%d: BinarySize() = %d, encoded %d bytes", n, d.BinarySize(), size)
		}
		got, err := DecodeDevice(d.AppendBinary(nil), 50)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !reflect.DeepEqual(got.AppendBinary(nil), d.AppendBinary(nil)) || !sameDevice(got, d) {
			t.Fatalf("n=%d: round trip differs:\n got %+v\nwant %+v", n, got, d)
		}
	}
}

// sameDevice compares states field by field, windows by their values
// (a window's ring layout is not part of the state).
func sameDevice(a, b *Device) bool {
	x, y := *a, *b
	x.RPS, x.CPU, y.RPS, y.CPU = nil, nil, nil, nil
	x.Named, y.Named = nil, nil
	if len(a.Named) != len(b.Named) {
		return false
	}
	for i := range a.Named {
		p, q := a.Named[i], b.Named[i]
		if !reflect.DeepEqual(p.Window.AppendValues(nil), q.Window.AppendValues(nil)) {
			return false
		}
		p.Window, q.Window = nil, nil
		if !reflect.DeepEqual(p, q) {
			return false
		}
	}
	return reflect.DeepEqual(x, y) && reflect.DeepEqual(a.RPS.AppendValues(nil), b.RPS.AppendValues(nil)) &&
		reflect.DeepEqual(a.CPU.AppendValues(nil), b.CPU.AppendValues(nil))
}

// Redis holds, per warm device, its state (this encoding) and its id in
// the shard's device set; anomaly and alert history are apart. Issue 9's
// budget for all detector and alert state of a device with two signals is
// 4 KiB; results' TestWarmDeviceRedisMemory measures Redis's own figure.
func TestWarmDeviceStateSize(t *testing.T) {
	d := warmDevice(rand.New(rand.NewPCG(5, 6)), 2000)
	for sig := range d.Signals {
		if s := d.Signals[sig].Score; s.Seen != 1<<48-1 {
			t.Fatalf("%s: daily profile buckets %b, want all 48 (a warm device)", SignalNames[sig], s.Seen)
		}
	}
	if d.AlertSeq < 2 || !d.Signals[SignalCPU].Alert.Alert.Open {
		t.Fatalf("test data: %d alerts, cpu's open %v; want an alert of each signal, cpu's open", d.AlertSeq, d.Signals[SignalCPU].Alert.Alert.Open)
	}
	size := len(d.AppendBinary(nil))
	quiet := *d // the same, had it never alerted: one byte per signal for it
	for sig := range quiet.Signals {
		quiet.Signals[sig].AlertSeq, quiet.Signals[sig].OpenedID, quiet.Signals[sig].Alert = 0, ID{}, alert.State{}
	}
	if q := len(quiet.AppendBinary(nil)); q != size-NumSignals*(3*8+alert.BinarySize) {
		t.Errorf("a warm device that never alerted takes %d bytes, want %d", q, size-NumSignals*(3*8+alert.BinarySize))
	}
	t.Logf("warm device, windows of 50, two signals: state %d bytes (%d without alerts)", size, len(quiet.AppendBinary(nil)))
	if size > 4096 {
		t.Errorf("a warm device's state is %d bytes, over the 4 KiB budget", size)
	}
}

// A state written by version 1 (before scores and alerts), as Redis holds
// it after an upgrade: it decodes with its windows and counters, zero
// scores and no alerts, and the next write is version 2.
func TestDecodeDeviceVersion1(t *testing.T) {
	v1 := unhex(t, "017b68e5cf8b01000004000000000000002c0300000000000009000000000000"+
		"0000000840fc54d94100000040fc54d94100000000000480400000000000a044"+
		"400000000000001a40000000000000e8bf010200000000000000594000000000"+
		"00048040020000000000000044400000000000a04440")
	d, err := DecodeDevice(v1, 50)
	if err != nil {
		t.Fatal(err)
	}
	want := NewDevice(50)
	want.LastID = ID{1700000000123, 4}
	want.Total, want.Anomalies, want.LastSeen = 812, 9, 1700000000.125
	want.Last = Last{Timestamp: 1700000000, RPS: 512.5, CPU: 41.25, ZRPS: 6.5, ZCPU: -0.75, Anomaly: true}
	want.RPS.Reset([]float64{100, 512.5})
	want.CPU.Reset([]float64{40, 41.25})
	if !sameDevice(d, want) {
		t.Fatalf("version 1 state decoded as\n%+v\nwant\n%+v", d, want)
	}
	enc := d.AppendBinary(nil)
	if enc[0] != deviceVersion || len(enc) <= len(v1) {
		t.Fatalf("re-encoded as version %d, %d bytes", enc[0], len(enc))
	}
	again, err := DecodeDevice(enc, 50)
	if err != nil || !sameDevice(again, want) {
		t.Fatalf("re-decoded %+v, %v", again, err)
	}
	for _, b := range [][]byte{v1[:len(v1)-1], append(append([]byte{}, v1...), 0)} {
		if _, err := DecodeDevice(b, 50); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a version 1 state of %d bytes: %v, want ErrCorrupt", len(b), err)
		}
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeDeviceKeepsNewestWhenWindowShrinks(t *testing.T) {
	d := NewDevice(50)
	for i := 0; i < 50; i++ {
		d.RPS.Push(float64(i))
	}
	got, err := DecodeDevice(d.AppendBinary(nil), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got.RPS.Len() != 10 || got.RPS.At(0) != 40 || got.RPS.At(9) != 49 {
		t.Fatalf("window = %v, want 40..49", got.RPS.AppendValues(nil))
	}
}

func TestDecodeDeviceRejectsCorrupt(t *testing.T) {
	good := NewDevice(5).AppendBinary(nil)
	wd := warmDevice(rand.New(rand.NewPCG(1, 1)), 300)
	warm := wd.AppendBinary(nil)
	cpuScore := len(warm) - 3*8 - 1 - 2 - wd.Signals[SignalCPU].Score.BinarySize() // the cpu score state's offset, before version 3's counters, tags and named signals
	badScore := append([]byte{}, warm...)
	badScore[cpuScore] = 9 // its version
	badAlert := append([]byte{}, warm...)
	badAlert[cpuScore-alert.BinarySize+1] = 7 // the cpu alert state's flags
	badFlags := append([]byte{}, warm...)
	badFlags[cpuScore-alert.BinarySize-3*8-1] = 2 // the cpu signal's flags
	for _, b := range [][]byte{nil, {9}, good[:len(good)-1], append(append([]byte{}, good...), 0), warm[:len(warm)-1], badScore, badAlert, badFlags} {
		if _, err := DecodeDevice(b, 5); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeDevice(%x) = %v, want ErrCorrupt", b, err)
		}
	}
}

func TestRecentKeepsNewest(t *testing.T) {
	r := &Recent{Size: 3}
	for i := uint64(1); i <= 5; i++ {
		r.Add(ID{i, 0}, float64(i))
	}
	got, err := DecodeRecent(r.AppendBinary(nil), 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{3, 4, 5}; !reflect.DeepEqual(got.RPS, want) || got.IDs[0] != (ID{3, 0}) {
		t.Fatalf("recent = %v %v, want %v", got.IDs, got.RPS, want)
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		{"1-2", ID{1, 2}, true},
		{"1700000000000-15", ID{1700000000000, 15}, true},
		{"1", ID{}, false},
		{"a-1", ID{}, false},
		{"1-", ID{}, false},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseID(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	if !(ID{1, 5}).Less(ID{2, 0}) || !(ID{1, 1}).Less(ID{1, 2}) || (ID{1, 2}).Less(ID{1, 2}) {
		t.Error("Less orders stream ids wrongly")
	}
}

func TestRecentOfSizeZeroKeepsOne(t *testing.T) {
	r := &Recent{}
	r.Add(ID{1, 0}, 1)
	r.Add(ID{2, 0}, 2)
	got, err := DecodeRecent(r.AppendBinary(nil), 0)
	if err != nil || len(got.RPS) != 1 || got.RPS[0] != 2 {
		t.Fatalf("recent = %v, %v; want the newest value only", got, err)
	}
}

func TestAnomalyRoundTrip(t *testing.T) {
	tests := []Anomaly{
		{DeviceID: "device-1", Timestamp: 1.7e9 + 0.25, Signal: "rps", Value: 1000, ZScore: 5.5, Score: 0.875, Mean: 100, StdDev: 15, StreamID: "1795659916894-0"},
		{DeviceID: "d", Timestamp: 946684800, Signal: "cpu", Value: 0, ZScore: -2.01, Mean: 50, StdDev: 3, StreamID: "1-18446744073709551615"},
	}
	for _, a := range tests {
		b := a.AppendBinary(nil)
		got, err := DecodeAnomaly(b)
		if err != nil || got != a {
			t.Errorf("round trip of %+v = %+v, %v", a, got, err)
		}
		if j, _ := json.Marshal(a); len(b) >= len(j)/2 {
			t.Errorf("binary record %d bytes, JSON %d: want well under half", len(b), len(j))
		}
		legacy, _ := json.Marshal(a)
		if got, err := DecodeAnomaly(legacy); err != nil || got != a {
			t.Errorf("JSON record %s decoded as %+v, %v", legacy, got, err)
		}
	}
	good := tests[0].AppendBinary(nil)
	for _, b := range [][]byte{nil, {3}, good[:20], append([]byte{2, 9}, good[2:]...), good[:len(good)-len("device-1")], []byte("{")} {
		if _, err := DecodeAnomaly(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeAnomaly(%q) = %v, want ErrCorrupt", b, err)
		}
	}
}

// Records written before scores — binary version 1 and JSON — still
// decode, with score 0.
func TestDecodeAnomalyEarlierVersions(t *testing.T) {
	want := Anomaly{DeviceID: "sensor-42", Timestamp: 1700000000, Signal: "rps", Value: 512.5, ZScore: 6.5, Mean: 101.5, StdDev: 12.25, StreamID: "1700000000123-4"}
	tests := map[string][]byte{
		"binary version 1": unhex(t, "01007b68e5cf8b010000040000000000000000000040fc54d94100000000000480400000000000001a400000000000605940000000000080284073656e736f722d3432"),
		"JSON":             []byte(`{"device_id":"sensor-42","timestamp":1700000000,"signal":"rps","value":512.5,"z_score":6.5,"mean":101.5,"std_dev":12.25,"stream_id":"1700000000123-4"}`),
	}
	for name, b := range tests {
		if got, err := DecodeAnomaly(b); err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, want)
		}
	}
}

func TestAlertRecordRoundTrip(t *testing.T) {
	tests := []Alert{
		{DeviceID: "sensor-42", Seq: 17, Signal: "rps", Open: true, OpenedID: ID{1700000000123, 4}, OpenedAt: 1700000000,
			Score: 0.5, Z: 7.25, Value: 512.5, Low: 90, High: 110, Events: 1},
		{DeviceID: "a:b", Seq: 1 << 40, Signal: "cpu", OpenedID: ID{1, 0}, OpenedAt: 946684800.5, ClosedAt: 946685800,
			Score: 1, Z: -3, Value: 0, Low: -1e300, High: 1e300, Events: 4_000_000_000},
	}
	for _, a := range tests {
		b := a.AppendBinary(nil)
		got, err := DecodeAlert(b)
		if err != nil || got != a {
			t.Errorf("round trip of %+v = %+v, %v", a, got, err)
		}
		if len(b) != alertFixedBytes+len(a.DeviceID) {
			t.Errorf("record of %d bytes, want %d", len(b), alertFixedBytes+len(a.DeviceID))
		}
		dev, seq, err := ParseAlertID(a.ID())
		if err != nil || dev != a.DeviceID || seq != a.Seq {
			t.Errorf("ParseAlertID(%q) = %q %d %v", a.ID(), dev, seq, err)
		}
	}
	good := tests[0].AppendBinary(nil)
	for _, b := range [][]byte{nil, good[:alertFixedBytes], append([]byte{3}, good[1:]...), append([]byte{1, 2}, good[2:]...), append([]byte{2, 7}, good[2:]...), append([]byte{1, 0, 2}, good[3:]...)} {
		if _, err := DecodeAlert(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeAlert(%x) = %v, want ErrCorrupt", b, err)
		}
	}
	for _, id := range []string{"", "dev", ":1", "dev:", "dev:0", "dev:x", "dev:-1"} {
		if _, _, err := ParseAlertID(id); err == nil {
			t.Errorf("ParseAlertID(%q) accepted", id)
		}
	}
}

// A device's alerts as records: the current or last one of each signal,
// its open ones newest first.
func TestDeviceAlerts(t *testing.T) {
	d := NewDevice(5)
	if _, ok := d.Alert("d", SignalRPS); ok || len(d.OpenAlerts("d")) != 0 {
		t.Fatal("a new device has alerts")
	}
	d.AlertSeq = 8
	d.Signals[SignalRPS] = Signal{AlertSeq: 7, OpenedID: ID{5, 1}}
	d.Signals[SignalRPS].Alert.Alert = alert.Alert{Open: true, OpenedAt: 10, Score: 0.5, Z: 4, Value: 9, Low: 1, High: 2, Events: 3}
	d.Signals[SignalCPU] = Signal{AlertSeq: 8, OpenedID: ID{6, 0}}
	d.Signals[SignalCPU].Alert.Alert = alert.Alert{Open: true, OpenedAt: 11, Score: 0.75, Events: 1}
	open := d.OpenAlerts("d")
	want := []Alert{
		{DeviceID: "d", Seq: 8, Signal: "cpu", Open: true, OpenedID: ID{6, 0}, OpenedAt: 11, Score: 0.75, Events: 1},
		{DeviceID: "d", Seq: 7, Signal: "rps", Open: true, OpenedID: ID{5, 1}, OpenedAt: 10, Score: 0.5, Z: 4, Value: 9, Low: 1, High: 2, Events: 3},
	}
	if !reflect.DeepEqual(open, want) {
		t.Fatalf("open alerts\n%+v\nwant\n%+v", open, want)
	}
	d.Signals[SignalCPU].Alert.Alert.Open = false
	if open := d.OpenAlerts("d"); len(open) != 1 || open[0].ID() != "d:7" {
		t.Fatalf("open alerts %+v, want d:7 only", open)
	}
}
