package state

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestDeviceRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 49, 50, 120} {
		d := NewDevice(50)
		d.LastID = ID{r.Uint64(), r.Uint64()}
		d.Total, d.Anomalies, d.LastSeen = r.Uint64(), r.Uint64(), r.Float64()*1e9
		d.Last = Last{Timestamp: 1.5e9, RPS: 3, CPU: 4, ZRPS: -2.5, ZCPU: 0.1, Anomaly: true}
		for i := 0; i < n; i++ {
			d.RPS.Push(r.NormFloat64())
			d.CPU.Push(r.Float64())
		}
		if size := len(d.AppendBinary(nil)); size != d.BinarySize() {
			t.Fatalf("n=%d: BinarySize() = %d, encoded %d bytes", n, d.BinarySize(), size)
		}
		got, err := DecodeDevice(d.AppendBinary(nil), 50)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !reflect.DeepEqual(got.AppendBinary(nil), d.AppendBinary(nil)) || got.Last != d.Last || got.RPS.Len() != d.RPS.Len() {
			t.Fatalf("n=%d: round trip differs:\n got %+v\nwant %+v", n, got, d)
		}
	}
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
	for _, b := range [][]byte{nil, {9}, good[:len(good)-1], append(append([]byte{}, good...), 0)} {
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
		{DeviceID: "device-1", Timestamp: 1.7e9 + 0.25, Signal: "rps", Value: 1000, ZScore: 5.5, Mean: 100, StdDev: 15, StreamID: "1795659916894-0"},
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
	for _, b := range [][]byte{nil, {2}, good[:20], append([]byte{1, 9}, good[2:]...), good[:len(good)-len("device-1")], []byte("{")} {
		if _, err := DecodeAnomaly(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeAnomaly(%q) = %v, want ErrCorrupt", b, err)
		}
	}
}
