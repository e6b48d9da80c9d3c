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
}

// Pool is a set of pre-encoded request bodies, so that sending costs the
// generator nothing but the HTTP exchange.
type Pool struct {
	Bodies      [][]byte
	Events      int // events in each body
	ContentType string
	Bytes       int64 // total size of the bodies
}

// Body returns body i modulo the pool size.
func (p *Pool) Body(i int64) []byte { return p.Bodies[i%int64(len(p.Bodies))] }

// device is one simulated device's behaviour.
type device struct {
	rps, rpsNoise float64
	cpu, cpuNoise float64
}

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
	now := w.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := rand.New(rand.NewPCG(w.Seed, 0x9e3779b97f4a7c15))
	devs := make([]device, w.Devices)
	for i := range devs {
		base := 50 * math.Pow(10, r.Float64()) // 50-500 rps, log-uniform
		cpu := 10 + 60*r.Float64()
		devs[i] = device{rps: base, rpsNoise: base * (0.05 + 0.1*r.Float64()), cpu: cpu, cpuNoise: 2 + 4*r.Float64()}
	}
	total := w.Bodies * w.Batch
	t0 := float64(now.UnixMilli()-int64(total)) / 1000
	p := &Pool{Bodies: make([][]byte, w.Bodies), Events: w.Batch, ContentType: "application/json"}
	j := 0
	for b := range p.Bodies {
		buf := make([]byte, 0, w.Batch*96+2)
		if w.Batch > 1 {
			buf = append(buf, '[')
		}
		for k := 0; k < w.Batch; k++ {
			if k > 0 {
				buf = append(buf, ',')
			}
			d := j % w.Devices
			rps, cpu := devs[d].sample(r)
			buf = appendEvent(buf, w.Prefix, d, cpu, rps, t0+float64(j)/1000)
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

// sample draws one event's rps and cpu.
func (d device) sample(r *rand.Rand) (rps, cpu float64) {
	rps = d.rps + d.rpsNoise*r.NormFloat64()
	cpu = d.cpu + d.cpuNoise*r.NormFloat64()
	switch u := r.Float64(); {
	case u < spikeRate:
		rps = d.rps * (3 + 3*r.Float64())
		cpu = 90 + 10*r.Float64()
	case u < spikeRate+dropRate:
		rps = d.rps * 0.1 * r.Float64()
	}
	return math.Max(rps, 0), math.Min(math.Max(cpu, 0), 100)
}

// appendEvent appends one metric as JSON, numbers rounded to 2 decimals
// and the timestamp to the millisecond.
func appendEvent(buf []byte, prefix string, dev int, cpu, rps, ts float64) []byte {
	buf = append(buf, `{"device_id":"`...)
	buf = appendDeviceID(buf, prefix, dev)
	buf = append(buf, `","cpu":`...)
	buf = strconv.AppendFloat(buf, cpu, 'f', 2, 64)
	buf = append(buf, `,"rps":`...)
	buf = strconv.AppendFloat(buf, rps, 'f', 2, 64)
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
