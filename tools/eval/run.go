package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/pulse-iot/pulse/internal/detector"
	"github.com/pulse-iot/pulse/tools/synth"
)

// Options say what to measure.
type Options struct {
	Seed       uint64
	Devices    int // devices per scenario
	Events     int // values per device and signal
	Params     detector.Params
	Detectors  []string         // detector names, in report order
	Scenarios  []synth.Scenario // in report order
	Thresholds []float64        // the sweep; the detector's own threshold is Params.Threshold
	Workers    int              // goroutines; 0 means GOMAXPROCS

	// New makes a detector; nil means detector.New. Each stream gets its
	// own detector and window.
	New func(name string, p detector.Params) (detector.Detector, error)
}

// DefaultThresholds is the sweep the report plots.
func DefaultThresholds() []float64 {
	return []float64{1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 4}
}

// Row is the result of one detector on one signal of one scenario, over
// every device.
type Row struct {
	Scenario     string
	Signal       string
	Detector     string
	HasAnomalies bool
	Counts       Counts   // at Params.Threshold, from the detector's own flags
	ByKind       []Counts // Counts split by the true kind (index synth.Kind)
	Delays       Delays
	Sweep        []Counts // at each of Options.Thresholds, from |Z|
}

// Result is every row of one run, in scenario, signal, detector order.
type Result struct {
	Options Options
	Rows    []Row
}

// Row returns the row of scenario, signal and detector.
func (r *Result) Row(scenario, signal, det string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Scenario == scenario && row.Signal == signal && row.Detector == det {
			return row, true
		}
	}
	return Row{}, false
}

// Run generates every scenario and runs every detector on it.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.New == nil {
		o.New = detector.New
	}
	if len(o.Detectors) == 0 || len(o.Scenarios) == 0 {
		return nil, errors.New("eval: no detectors or no scenarios")
	}
	if o.Params.WindowSize < 1 || o.Params.MinSamples < 1 || !(o.Params.Threshold > 0) {
		return nil, fmt.Errorf("eval: bad detector parameters %+v", o.Params)
	}
	for _, name := range o.Detectors {
		if _, err := o.New(name, o.Params); err != nil {
			return nil, err
		}
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}

	// One job per stream and detector; each writes its own slot.
	type job struct {
		stream *synth.Stream
		det    string
		out    *Row
	}
	var (
		jobs    []job
		streams [][]synth.Stream
		slots   [][]Row // [row][device]
		rows    []Row
	)
	for _, sc := range o.Scenarios {
		st, err := synth.Generate(o.Seed, sc, o.Devices, o.Events)
		if err != nil {
			return nil, err
		}
		streams = append(streams, st)
		for _, sig := range sc.Signals {
			for _, det := range o.Detectors {
				rows = append(rows, Row{Scenario: sc.Name, Signal: sig.Name, Detector: det, HasAnomalies: sig.HasAnomalies()})
				slots = append(slots, make([]Row, o.Devices))
			}
		}
	}
	r := 0
	for si, sc := range o.Scenarios {
		for gi := range sc.Signals {
			for range o.Detectors {
				for d := 0; d < o.Devices; d++ {
					jobs = append(jobs, job{stream: &streams[si][d*len(sc.Signals)+gi], det: rows[r].Detector, out: &slots[r][d]})
				}
				r++
			}
		}
	}

	ch := make(chan job)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := newScratch(o.Events)
			for j := range ch {
				d, err := o.New(j.det, o.Params)
				if err == nil {
					*j.out, err = evalStream(j.stream, d, o.Params, o.Thresholds, sc)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	var ctxErr error
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			ctxErr = ctx.Err()
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if ctxErr != nil {
		return nil, ctxErr
	}
	if firstErr != nil {
		return nil, firstErr
	}

	for i := range rows {
		rows[i].ByKind = make([]Counts, synth.NumKinds)
		rows[i].Sweep = make([]Counts, len(o.Thresholds))
		for _, part := range slots[i] {
			rows[i].Counts.Merge(part.Counts)
			rows[i].Delays.Merge(part.Delays)
			for k := range part.ByKind {
				rows[i].ByKind[k].Merge(part.ByKind[k])
			}
			for k := range part.Sweep {
				rows[i].Sweep[k].Merge(part.Sweep[k])
			}
		}
	}
	return &Result{Options: o, Rows: rows}, nil
}

func cmpErr(a, b error) error {
	if a == nil {
		return b
	}
	return a
}

type scratch struct {
	flags    []bool
	settling []bool
}

func newScratch(n int) *scratch {
	return &scratch{flags: make([]bool, n), settling: make([]bool, n)}
}

// evalStream runs d over one stream from an empty window.
func evalStream(st *synth.Stream, d detector.Detector, p detector.Params, thresholds []float64, sc *scratch) (Row, error) {
	n := len(st.Values)
	if len(sc.flags) < n {
		*sc = *newScratch(n)
	}
	flags, settling := sc.flags[:n], sc.settling[:n]
	clear(flags)
	clear(settling)

	// Settling values: after each shift's labelled values, until the window
	// has turned over or the next shift comes.
	for j, s := range st.Shifts {
		end := min(s.At+p.WindowSize, n)
		if j+1 < len(st.Shifts) {
			end = min(end, st.Shifts[j+1].At)
		}
		for i := s.At + synth.ShiftSpan; i < end; i++ {
			if st.Kinds[i] == synth.Normal {
				settling[i] = true
			}
		}
	}

	row := Row{ByKind: make([]Counts, synth.NumKinds), Sweep: make([]Counts, len(thresholds))}
	w := detector.NewWindow(p.WindowSize)
	for i, x := range st.Values {
		res := d.Observe(w, x)
		if math.IsNaN(res.Z) || math.IsInf(res.Z, 0) {
			return Row{}, fmt.Errorf("eval: %s gave z=%v on %s/%s/%s value %d", d.Name(), res.Z, st.Scenario, st.Device, st.Signal, i)
		}
		flags[i] = res.Anomaly
		if i < p.MinSamples {
			row.Counts.Warmup++
			continue
		}
		if settling[i] {
			row.Counts.Settling++
			if res.Anomaly {
				row.Counts.SettlingFlags++
			}
			continue
		}
		kind := st.Kinds[i]
		row.Counts.Add(kind.Anomaly(), res.Anomaly)
		row.ByKind[kind].Add(kind.Anomaly(), res.Anomaly)
		az := math.Abs(res.Z)
		for k, t := range thresholds {
			row.Sweep[k].Add(kind.Anomaly(), az > t)
		}
	}

	for j, s := range st.Shifts {
		end := min(s.At+p.WindowSize, n)
		if j+1 < len(st.Shifts) {
			end = min(end, st.Shifts[j+1].At)
		}
		if s.At < p.MinSamples || s.At+DelayTarget > n {
			continue // not judged, or too close to the end to tell
		}
		delay := -1
		for i := s.At; i < end; i++ {
			if flags[i] {
				delay = i - s.At
				break
			}
		}
		row.Delays.Add(s.Size, delay)
	}
	return row, nil
}
