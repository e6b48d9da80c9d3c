package state

import (
	"bufio"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/score"
)

// namedDevice is a warm device with named signals and tags: the second
// named signal has alerted.
func namedDevice(r *rand.Rand) *Device {
	d := warmDevice(r, 200)
	sp, ap := score.DefaultParams(), alert.DefaultParams()
	for k, name := range []string{"temperature", "battery_v", "humidity"} {
		s := Named{Name: name, Window: detector.NewWindow(50)}
		for i := 0; i < 400+k*10; i++ {
			t := 1.7e9 + 300*float64(i)
			x := 20 + r.NormFloat64()
			if k == 1 && i > 380 {
				x += 50
			}
			s.Window.Push(x)
			sc := sp.Observe(&s.Score, t, x)
			if ap.Step(&s.Alert, alert.Input{Time: t, Value: x, Score: sc.Score, Z: 4, Low: sc.Low, High: sc.High}) == alert.Opened {
				d.AlertSeq++
				s.AlertSeq, s.OpenedID = d.AlertSeq, ID{uint64(t * 1000), 0}
			}
			s.LastValue, s.LastZ, s.LastScore = x, 4, sc.Score
		}
		s.Anomalies = uint64(k * 3)
		d.Named = append(d.Named, s)
	}
	d.Tags = []Tag{{"model", "x1"}, {"site", "berlin"}}
	d.DroppedSignals = 7
	d.Signals[SignalRPS].Anomalies, d.Signals[SignalCPU].Anomalies = 11, 2
	return d
}

func TestNamedDeviceRoundTrip(t *testing.T) {
	d := namedDevice(rand.New(rand.NewPCG(5, 6)))
	if d.Named[1].AlertSeq == 0 {
		t.Fatal("the fixture's battery_v never alerted")
	}
	b := d.AppendBinary(nil)
	if len(b) != d.BinarySize() {
		t.Fatalf("BinarySize() = %d, encoded %d bytes", d.BinarySize(), len(b))
	}
	got, err := DecodeDevice(b, 50)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDevice(got, d) || !reflect.DeepEqual(got.AppendBinary(nil), b) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, d)
	}
	if sig := got.FindNamed("battery_v"); sig != NumSignals+1 || got.SignalName(sig) != "battery_v" || got.SignalCount() != 5 {
		t.Fatalf("FindNamed(battery_v) = %d, SignalCount %d", sig, got.SignalCount())
	}
	a, ok := got.Alert("dev", NumSignals+1)
	if !ok || a.Signal != "battery_v" || a.Seq != d.Named[1].AlertSeq {
		t.Fatalf("Alert(battery_v) = %+v, %v", a, ok)
	}
	for _, n := range []int{1, 100, 400, len(b) - 1} { // every truncation inside the named part is corrupt
		if _, err := DecodeDevice(b[:len(b)-n], 50); err == nil {
			t.Errorf("DecodeDevice of %d bytes less accepted", n)
		}
	}
}

// OpenAlerts lists every signal's open alert, named ones included, newest
// first.
func TestOpenAlertsAcrossNamedSignals(t *testing.T) {
	d := NewDevice(5)
	d.Named = []Named{{Name: "temperature", Window: detector.NewWindow(5)}, {Name: "humidity", Window: detector.NewWindow(5)}}
	for sig, seq := range map[int]uint64{SignalCPU: 2, NumSignals: 5, NumSignals + 1: 3} {
		s := d.Signal(sig)
		s.AlertSeq, s.Alert.Alert.Open = seq, true
	}
	var got []string
	for _, a := range d.OpenAlerts("d") {
		got = append(got, a.Signal)
	}
	if want := []string{"temperature", "humidity", "cpu"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("OpenAlerts signals = %v, want %v", got, want)
	}
}

func TestNamedRecordsRoundTrip(t *testing.T) {
	an := Anomaly{DeviceID: "sensor-1", Timestamp: 1700000000.5, Signal: "battery_v", Value: 2.9, ZScore: -4.5, Score: 0.9,
		Mean: 3.7, StdDev: 0.05, StreamID: "1700000000123-4"}
	got, err := DecodeAnomaly(an.AppendBinary(nil))
	if err != nil || got != an {
		t.Fatalf("anomaly round trip = %+v, %v; want %+v", got, err, an)
	}
	al := Alert{DeviceID: "sensor-1", Seq: 9, Signal: "temperature", Open: true, OpenedID: ID{1700000000123, 4},
		OpenedAt: 1700000000, Score: 0.5, Z: 7.25, Value: 85, Low: 18, High: 24, Events: 3}
	gotAlert, err := DecodeAlert(al.AppendBinary(nil))
	if err != nil || gotAlert != al {
		t.Fatalf("alert round trip = %+v, %v; want %+v", gotAlert, err, al)
	}
	b := al.AppendBinary(nil)
	b[alertFixedBytes] = 200 // the name's length, beyond the record
	if _, err := DecodeAlert(b); err == nil {
		t.Error("alert record with a name longer than the record accepted")
	}
}

// Records written before named signals, by the previous release (the
// fixtures were encoded by it), still decode: a state of version 2 with
// no named signals, no tags and per-signal anomaly counts of 0, and
// anomaly and alert records of rps and cpu.
func TestRecordsOfThePreviousReleaseDecode(t *testing.T) {
	f, err := os.Open("testdata/v2-records.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fix := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kind, h, _ := strings.Cut(sc.Text(), " ")
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		fix[kind] = b
	}
	if fix["DEV"][0] != 2 {
		t.Fatalf("fixture state of version %d, want 2", fix["DEV"][0])
	}
	d, err := DecodeDevice(fix["DEV"], 50)
	if err != nil {
		t.Fatal(err)
	}
	wantDev := warmDevice(rand.New(rand.NewPCG(7, 7)), 120)
	for sig := range wantDev.Signals { // score states of version 2: no scheduled-spike record
		sc := &wantDev.Signals[sig].Score
		sc.Day, sc.Today, sc.Peaks = 0, score.Peak{}, [len(sc.Peaks)]score.Peak{}
	}
	if !sameDevice(d, wantDev) {
		t.Fatalf("version 2 state decodes to\n%+v\nwant %+v", d, wantDev)
	}
	if d.Named != nil || d.Tags != nil || d.DroppedSignals != 0 {
		t.Fatalf("version 2 state has named signals or tags: %+v", d)
	}
	an, err := DecodeAnomaly(fix["ANOM"])
	want := Anomaly{DeviceID: "sensor-1", Timestamp: 1700000000.5, Signal: "cpu", Value: 97, ZScore: 3.5, Score: 0.75, Mean: 40,
		StdDev: 5, StreamID: "1700000000123-4"}
	if err != nil || an != want {
		t.Fatalf("version 2 anomaly = %+v, %v; want %+v", an, err, want)
	}
	al, err := DecodeAlert(fix["ALERT"])
	wantAlert := Alert{DeviceID: "sensor-1", Seq: 3, Signal: "rps", OpenedID: ID{1700000000123, 4}, OpenedAt: 1700000000,
		ClosedAt: 1700000300, Score: 0.5, Z: 7.25, Value: 512.5, Low: 90, High: 110, Events: 12}
	if err != nil || al != wantAlert {
		t.Fatalf("version 1 alert = %+v, %v; want %+v", al, err, wantAlert)
	}
}
