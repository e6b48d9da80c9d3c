package alert

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// run steps p over scores (value i at time 100+i) and returns the changes
// as "o" (opened), "c" (closed) or "." per value, and the final state.
func run(p Params, scores []float64) (string, State) {
	var st State
	var b bytes.Buffer
	for i, s := range scores {
		switch p.Step(&st, Input{Time: float64(100 + i), Value: float64(i), Score: s, Z: 10 * s, Low: -1, High: 1}) {
		case Opened:
			b.WriteByte('o')
		case Closed:
			b.WriteByte('c')
		default:
			b.WriteByte('.')
		}
	}
	return b.String(), st
}

func rep(v float64, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func cat(parts ...[]float64) []float64 {
	var s []float64
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

func TestStep(t *testing.T) {
	p := Params{Threshold: 0.4, Recovery: 3}
	tests := []struct {
		name   string
		scores []float64
		want   string
	}{
		{"quiet", rep(0.1, 6), "......"},
		{"just below the threshold", rep(0.399, 4), "...."},
		{"at the threshold opens", []float64{0.4, 0, 0, 0}, "o..c"},
		{"one spike: opens, closes after 3 normal values", cat([]float64{0.1, 0.9}, rep(0.05, 4)), ".o..c."},
		// An episode: unusual values (≥ threshold/2) keep the alert open
		// and reset the recovery count; no second opening.
		{"long episode opens once", cat([]float64{0.9, 0.5, 0.3, 0.25, 0.9, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1}, rep(0, 2)),
			"o.........c.."},
		// Scores wandering around the threshold do not flap.
		{"no flapping around the threshold", []float64{0.41, 0.39, 0.41, 0.38, 0.42, 0.39, 0.1, 0.1, 0.1},
			"o.......c"},
		{"reopens after closing", cat([]float64{0.9, 0, 0, 0}, []float64{0.8, 0, 0, 0}), "o..co..c"},
		{"NaN scores are normal", []float64{0.9, math.NaN(), math.NaN(), math.NaN(), math.NaN()}, "o..c."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := run(p, tt.scores); got != tt.want {
				t.Errorf("changes %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAlertRecord(t *testing.T) {
	p := Params{Threshold: 0.5, Recovery: 2}
	var st State
	in := func(i int, s float64) Input {
		return Input{Time: 1000 + float64(i), Value: float64(i), Score: s, Z: 4, Low: 1, High: 2}
	}
	if c := p.Step(&st, in(0, 0.1)); c != None {
		t.Fatalf("quiet value: %v", c)
	}
	if c := p.Step(&st, in(1, 0.7)); c != Opened {
		t.Fatalf("opening value: %v", c)
	}
	want := Alert{Open: true, OpenedAt: 1001, Score: 0.7, Z: 4, Value: 1, Low: 1, High: 2, Events: 1}
	if st.Alert != want {
		t.Fatalf("opened: %+v, want %+v", st.Alert, want)
	}
	// Later values do not change what opened it.
	p.Step(&st, in(2, 0.95))
	p.Step(&st, in(3, 0.1))
	if c := p.Step(&st, in(4, 0.1)); c != Closed {
		t.Fatalf("second normal value: %v", c)
	}
	want.Open, want.ClosedAt, want.Events = false, 1004, 4
	if st.Alert != want {
		t.Fatalf("closed: %+v, want %+v", st.Alert, want)
	}
	// A closed alert stays as it was until the next one opens.
	p.Step(&st, in(5, 0.2))
	if st.Alert != want {
		t.Fatalf("after closing: %+v", st.Alert)
	}
}

func TestDeterministic(t *testing.T) {
	p := DefaultParams()
	scores := make([]float64, 5000)
	x := uint64(1)
	for i := range scores {
		x = x*6364136223846793005 + 1442695040888963407
		scores[i] = float64(x>>11) / (1 << 53)
	}
	a, sa := run(p, scores)
	b, sb := run(p, scores)
	if a != b || sa != sb {
		t.Fatal("the same scores gave different alerts")
	}
	// Replaying from a decoded state mid-way gives the same alerts.
	var st State
	var got bytes.Buffer
	for i, s := range scores {
		if i == 2500 {
			dec, err := Decode(st.AppendBinary(nil))
			if err != nil {
				t.Fatal(err)
			}
			st = dec
		}
		c := p.Step(&st, Input{Time: float64(100 + i), Value: float64(i), Score: s, Z: 10 * s, Low: -1, High: 1})
		got.WriteByte(".oc"[c])
	}
	if got.String() != a {
		t.Fatal("a state that went through the encoding gave different alerts")
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{{0, 5}, {-0.1, 5}, {1.1, 5}, {math.NaN(), 5}, {0.5, 0}, {0.5, 70000}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Error(err)
	}
}

func TestBinary(t *testing.T) {
	p := Params{Threshold: 0.5, Recovery: 4}
	var st State
	p.Step(&st, Input{Time: 1.7e9, Value: -3.25, Score: 0.75, Z: -8.5, Low: 1, High: 2.5})
	p.Step(&st, Input{Time: 1.7e9 + 60, Score: 0.1})
	b := st.AppendBinary(nil)
	if len(b) != BinarySize {
		t.Fatalf("encoded %d bytes, want %d", len(b), BinarySize)
	}
	got, err := Decode(b)
	if err != nil || got != st {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, st)
	}
	for _, bad := range [][]byte{nil, b[:BinarySize-1], append(append([]byte{}, b...), 0), append([]byte{2}, b[1:]...), append([]byte{1, 2}, b[2:]...)} {
		if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	var st State
	f.Add(st.AppendBinary(nil))
	DefaultParams().Step(&st, Input{Time: 1, Score: 1})
	f.Add(st.AppendBinary(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(st.AppendBinary(nil), b) {
			t.Fatalf("accepted %x but re-encodes differently", b)
		}
		// Whatever was accepted, stepping works and an open alert closes.
		p := DefaultParams()
		for i := 0; i <= p.Recovery; i++ {
			p.Step(&st, Input{Time: float64(i)})
		}
		if st.Alert.Open {
			t.Fatalf("alert still open after %d normal values", p.Recovery+1)
		}
	})
}

func BenchmarkStep(b *testing.B) {
	p := DefaultParams()
	var st State
	in := Input{Time: 1, Value: 2, Z: 3, Low: 1, High: 2}
	for i := 0; b.Loop(); i++ {
		in.Score = float64(i%97) / 96
		p.Step(&st, in)
	}
}

// A state whose recovery count is at its largest (a decoded one, say)
// still closes on the next normal value instead of wrapping around.
func TestRecoveryCountSaturates(t *testing.T) {
	st := State{Alert: Alert{Open: true, Events: 1}, normal: math.MaxUint16}
	dec, err := Decode(st.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c := DefaultParams().Step(&dec, Input{Time: 1}); c != Closed {
		t.Errorf("normal value after %d normal ones: %v, want closed", math.MaxUint16, c)
	}
}
