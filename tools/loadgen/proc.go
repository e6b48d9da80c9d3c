package loadgen

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/procfs"
)

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// architecture Go supports (the kernel's ABI, whatever its CONFIG_HZ).
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the CPU time (user + system) process pid has used, from
// /proc/<pid>/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, err
	}
	return processCPU(fs, pid)
}

func processCPU(fs procfs.FS, pid int) (time.Duration, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat of process %d: %w", pid, err)
	}
	return time.Duration(st.UTime+st.STime) * clockTick, nil
}

// ProcessMemory returns process pid's resident set size now (VmRSS) and at
// its peak (VmHWM), in bytes, from /proc/<pid>/status.
func ProcessMemory(pid int) (rss, peak int64, err error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, 0, err
	}
	return processMemory(fs, pid)
}

func processMemory(fs procfs.FS, pid int) (rss, peak int64, err error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, 0, fmt.Errorf("status of process %d: %w", pid, err)
	}
	return int64(st.VmRSS), int64(st.VmHWM), nil
}

// MachineTimes is the time all processors spent, by kind, since boot.
type MachineTimes struct {
	Busy  time.Duration // running anything: processes, kernel, interrupts (not idle, iowait or steal)
	IRQ   time.Duration // hard and soft interrupts (loopback TCP is mostly softirq), in no process's time
	Steal time.Duration // wanted to run, but the hypervisor ran someone else
	Total time.Duration // all of it
}

// MachineCPU returns the processors' times from /proc/stat: their deltas
// over a run give the machine's load, ours and everyone else's.
func MachineCPU() (MachineTimes, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return MachineTimes{}, err
	}
	return machineCPU(fs)
}

func machineCPU(fs procfs.FS) (MachineTimes, error) {
	st, err := fs.Stat()
	if err != nil {
		return MachineTimes{}, err
	}
	c := st.CPUTotal
	// procfs gives seconds (ticks / USER_HZ): back to whole ticks, so the
	// sums are exact. Guest time is already counted in user and nice.
	ticks := func(s float64) time.Duration {
		return time.Duration(math.Round(s*float64(time.Second/clockTick))) * clockTick
	}
	user, nice, system, idle := ticks(c.User), ticks(c.Nice), ticks(c.System), ticks(c.Idle)
	iowait, irq, softirq, steal := ticks(c.Iowait), ticks(c.IRQ), ticks(c.SoftIRQ), ticks(c.Steal)
	total := user + nice + system + idle + iowait + irq + softirq + steal
	return MachineTimes{Busy: total - idle - iowait - steal, IRQ: irq + softirq, Steal: steal, Total: total}, nil
}
