package analysis

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/internal/state"
)

// benchBatch is a batch of n entries of devices warm devices, in turn,
// with noisy values and a spike now and then, and the devices' states
// encoded after warm events each (full windows).
func benchBatch(b *testing.B, devices, n, warm int) ([]Entry, map[string][]byte) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	next := func(ms uint64, dev string) Entry {
		rps := 100 + 15*r.NormFloat64()
		if r.IntN(50) == 0 {
			rps += 400
		}
		return entry(ms, dev, 40+5*r.Float64(), max(rps, 0))
	}
	var history []Entry
	ms := uint64(1_700_000_000_000)
	for i := 0; i < devices*warm; i++ {
		ms++
		history = append(history, next(ms, fmt.Sprintf("dev-%04d", i%devices)))
	}
	a := benchApplier(b)
	states := map[string]*state.Device{}
	a.Apply(Decode(history), states, nil)
	stored := map[string][]byte{}
	for id, st := range states {
		stored[id] = st.AppendBinary(nil)
	}
	batch := make([]Entry, n)
	for i := range batch {
		ms++
		batch[i] = next(ms, fmt.Sprintf("dev-%04d", i%devices))
	}
	return batch, stored
}

func benchApplier(b *testing.B) *Applier {
	det, err := detector.New("robust", detector.Params{WindowSize: 50, MinSamples: 10, Threshold: 2})
	if err != nil {
		b.Fatal(err)
	}
	return NewApplier(det, DefaultParams(50))
}

// BenchmarkApplyBatch is the analyzer's CPU work for one batch of 500
// entries of 100 warm devices, without Redis: decode the entries and the
// devices' stored states, apply, encode the new states. ns/event is the
// figure to compare.
func BenchmarkApplyBatch(b *testing.B) {
	entries, stored := benchBatch(b, 100, 500, 200)
	a := benchApplier(b)
	recent := &state.Recent{Size: 50}
	var buf []byte
	events := 0
	for b.Loop() {
		d := Decode(entries)
		states := make(map[string]*state.Device, len(d.DeviceIDs))
		for _, id := range d.DeviceIDs {
			st, err := state.DecodeDevice(stored[id], 50)
			if err != nil {
				b.Fatal(err)
			}
			states[id] = st
		}
		res := a.Apply(d, states, recent)
		buf = buf[:0]
		for _, u := range res.Updates {
			buf = u.State.AppendBinary(buf)
		}
		events += res.Processed
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}

// BenchmarkApply is Apply alone: the per-value work on states in memory.
func BenchmarkApply(b *testing.B) {
	entries, stored := benchBatch(b, 100, 500, 200)
	a := benchApplier(b)
	d := Decode(entries)
	states := make(map[string]*state.Device, len(stored))
	events := 0
	for b.Loop() {
		b.StopTimer()
		for id, raw := range stored {
			st, _ := state.DecodeDevice(raw, 50)
			states[id] = st
		}
		b.StartTimer()
		events += a.Apply(d, states, nil).Processed
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}
