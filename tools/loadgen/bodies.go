package loadgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/pulse-iot/pulse/internal/metric"
)

// Workload describes the request bodies of a run: a fleet of devices, each
// with its own rps and cpu baseline, Gaussian noise and occasional spikes
// and drops, reporting in turn (event j is device j mod Devices's), so every
// device gets the same number of events and a batch of up to Devices events
// has distinct devices, as a gateway's does.
type Workload struct {
	Devices int    // distinct device ids, >= 1
	Batch   int    // events per body: 1 gives a single JSON object, more a JSON array
	Bodies  int    // bodies in the pool; Bodies·Batch events in all
	Prefix  string // device ids are Prefix-000042; [A-Za-z0-9._:-] only
	Seed    uint64
	// Now stamps the events: event j of n is Now - (n-j) ms, so every
	// timestamp is in the past and they increase through the pool.
	Now time.Time
	// Named adds these named signals to every event ("metrics": {...}),
	// each device with its own baseline and noise per signal (NamedSignals
	// lists the ones with a realistic range). Names must be valid metric
	// names, not cpu or rps. The cpu and rps values are those of the same
	// workload without Named: the named values come from a random stream
	// of their own.
	Named []string
	// Calm leaves out the spikes and drops: Gaussian noise only, so that
	// (almost) no anomaly or alert is recorded.
	Calm bool
	// RoundStep, when set, spaces the rounds (one event of each device)
	// RoundStep apart: event j is stamped Now - (rounds - j/Devices) ·
	// RoundStep + (j mod Devices) ms, e.g. 30 min to cover the analyzers'
	// half-hour buckets of a day. It must exceed Devices ms.
	RoundStep time.Duration
}

// NamedSignals are the named signals with a realistic range of values the
// load generator knows, in the order a workload usually takes them.
var NamedSignals = []string{"temperature", "humidity", "battery_v", "vibration"}

// namedRange is a named signal's baseline range and its noise as a share
// of the baseline; unknown names get 0-100 and 5%.
type namedRange struct{ lo, hi, noise float64 }

var namedRanges = map[string]namedRange{
	"temperature": {15, 35, 0.02},
	"humidity":    {30, 70, 0.03},
	"battery_v":   {3.5, 4.1, 0.005},
	"vibration":   {0.05, 0.5, 0.1},
}

// Pool is a set of pre-encoded request bodies, so that sending costs the
// generator nothing but the HTTP exchange.
type Pool struct {
	Bodies      [][]byte
	Events      int // events in each body
	Signals     int // values in each event: cpu and rps, and the named ones
	ContentType string
	Bytes       int64 // total size of the bodies
}

// Body returns body i modulo the pool size.
func (p *Pool) Body(i int64) []byte { return p.Bodies[i%int64(len(p.Bodies))] }

// device is one simulated device's behaviour.
type device struct {
	rps, rpsNoise float64
	cpu, cpuNoise float64
	named         []baseline // one per Workload.Named
}

// baseline is one named signal's level and noise on one device.
type baseline struct{ level, noise float64 }

// Anomaly rates of the synthetic devices: one event in 100 is a spike (rps
// 3-6 times its baseline, cpu near saturation), one in 200 a drop (rps
// near zero).
const (
	spikeRate = 0.01
	dropRate  = 0.005
)

// Generate encodes the workload's bodies.
func (w Workload) Generate() (*Pool, error) {
	if w.Devices < 1 || w.Batch < 1 || w.Bodies < 1 {
		return nil, errors.New("loadgen: Devices, Batch and Bodies must be at least 1")
	}
	if n := len(DeviceID(w.Prefix, w.Devices-1)); w.Prefix == "" || n > metric.MaxDeviceIDLen {
		return nil, fmt.Errorf("loadgen: device id prefix %q: ids would be %d characters, at most %d allowed", w.Prefix, n, metric.MaxDeviceIDLen)
	}
	for _, c := range []byte(w.Prefix) {
		if !idChar(c) {
			return nil, fmt.Errorf("loadgen: device id prefix %q: only [A-Za-z0-9._:-]", w.Prefix)
		}
	}
	seen := map[string]bool{}
	for _, n := range w.Named {
		if !metric.ValidName(n) || metric.Reserved(n) || seen[n] {
			return nil, fmt.Errorf("loadgen: named signal %q: want distinct metric names ([a-z][a-z0-9_]{0,63}), not cpu or rps", n)
		}
		seen[n] = true
	}
	if w.RoundStep < 0 || w.RoundStep > 0 && w.RoundStep <= time.Duration(w.Devices)*time.Millisecond {
		return nil, fmt.Errorf("loadgen: RoundStep %v: must exceed one millisecond per device (%d)", w.RoundStep, w.Devices)
	}
	now := w.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := rand.New(rand.NewPCG(w.Seed, 0x9e3779b97f4a7c15))
	// The named values' own stream: r draws exactly what it drew before
	// named signals existed, so the cpu and rps values stay the same.
	rn := rand.New(rand.NewPCG(w.Seed, 0x6a09e667f3bcc909))
	devs := make([]device, w.Devices)
	for i := range devs {
		base := 50 * math.Pow(10, r.Float64()) // 50-500 rps, log-uniform
		cpu := 10 + 60*r.Float64()
		devs[i] = device{rps: base, rpsNoise: base * (0.05 + 0.1*r.Float64()), cpu: cpu, cpuNoise: 2 + 4*r.Float64()}
		for _, n := range w.Named {
			rg, ok := namedRanges[n]
			if !ok {
				rg = namedRange{0, 100, 0.05}
			}
			level := rg.lo + (rg.hi-rg.lo)*rn.Float64()
			devs[i].named = append(devs[i].named, baseline{level: level, noise: level * rg.noise * (0.5 + rn.Float64())})
		}
	}
	total := w.Bodies * w.Batch
	t0 := float64(now.UnixMilli()-int64(total)) / 1000
	stamp := func(j int) float64 {
		if w.RoundStep > 0 {
			rounds := (total + w.Devices - 1) / w.Devices
			at := now.Add(-time.Duration(rounds-j/w.Devices) * w.RoundStep).Add(time.Duration(j%w.Devices) * time.Millisecond)
			return float64(at.UnixMilli()) / 1000
		}
		return t0 + float64(j)/1000
	}
	p := &Pool{Bodies: make([][]byte, w.Bodies), Events: w.Batch, Signals: 2 + len(w.Named), ContentType: "application/json"}
	values := make([]float64, len(w.Named))
	j := 0
	for b := range p.Bodies {
		buf := make([]byte, 0, w.Batch*(96+24*len(w.Named))+2)
		if w.Batch > 1 {
			buf = append(buf, '[')
		}
		for k := 0; k < w.Batch; k++ {
			if k > 0 {
				buf = append(buf, ',')
			}
			d := j % w.Devices
			rps, cpu := devs[d].sample(r, w.Calm)
			for i, bl := range devs[d].named {
				values[i] = bl.sample(rn, w.Calm)
			}
			buf = appendEvent(buf, w.Prefix, d, cpu, rps, w.Named, values, stamp(j))
			j++
		}
		if w.Batch > 1 {
			buf = append(buf, ']')
		}
		p.Bodies[b] = buf
		p.Bytes += int64(len(buf))
	}
	return p, nil
}

// sample draws one event's rps and cpu; calm, without spikes and drops.
func (d device) sample(r *rand.Rand, calm bool) (rps, cpu float64) {
	rps = d.rps + d.rpsNoise*r.NormFloat64()
	cpu = d.cpu + d.cpuNoise*r.NormFloat64()
	switch u := r.Float64(); {
	case calm:
	case u < spikeRate:
		rps = d.rps * (3 + 3*r.Float64())
		cpu = 90 + 10*r.Float64()
	case u < spikeRate+dropRate:
		rps = d.rps * 0.1 * r.Float64()
	}
	return math.Max(rps, 0), math.Min(math.Max(cpu, 0), 100)
}

// sample draws one value of a named signal: Gaussian noise around the
// level and, unless calm, a spike (+5 to +10 noise widths) one time in 100.
func (bl baseline) sample(r *rand.Rand, calm bool) float64 {
	v := bl.level + bl.noise*r.NormFloat64()
	if u := r.Float64(); !calm && u < spikeRate {
		v = bl.level + bl.noise*(5+5*r.Float64())
	}
	return math.Max(v, 0)
}

// appendEvent appends one metric as JSON, numbers rounded to 2 decimals
// (named values to 3) and the timestamp to the millisecond.
func appendEvent(buf []byte, prefix string, dev int, cpu, rps float64, names []string, values []float64, ts float64) []byte {
	buf = append(buf, `{"device_id":"`...)
	buf = appendDeviceID(buf, prefix, dev)
	buf = append(buf, `","cpu":`...)
	buf = strconv.AppendFloat(buf, cpu, 'f', 2, 64)
	buf = append(buf, `,"rps":`...)
	buf = strconv.AppendFloat(buf, rps, 'f', 2, 64)
	if len(names) > 0 {
		buf = append(buf, `,"metrics":{`...)
		for i, n := range names {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = append(buf, n...)
			buf = append(buf, `":`...)
			buf = strconv.AppendFloat(buf, values[i], 'f', 3, 64)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `,"timestamp":`...)
	buf = strconv.AppendFloat(buf, ts, 'f', 3, 64)
	return append(buf, '}')
}

// DeviceID returns the id of device i of a workload with this prefix.
func DeviceID(prefix string, i int) string { return string(appendDeviceID(nil, prefix, i)) }

func appendDeviceID(buf []byte, prefix string, i int) []byte {
	buf = append(buf, prefix...)
	buf = append(buf, '-')
	n := strconv.Itoa(i)
	for k := len(n); k < 6; k++ {
		buf = append(buf, '0')
	}
	return append(buf, n...)
}

func idChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}
