package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// architecture Go supports (the kernel's ABI, whatever its CONFIG_HZ).
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the CPU time (user + system) process pid has used, from
// /proc/<pid>/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat line: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat times %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, nil
}

// ProcessMemory returns process pid's resident set size now (VmRSS) and at
// its peak (VmHWM), in bytes, from /proc/<pid>/status.
func ProcessMemory(pid int) (rss, peak int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			rss, err = kib(line)
		case strings.HasPrefix(line, "VmHWM:"):
			peak, err = kib(line)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return rss, peak, sc.Err()
}

func kib(line string) (int64, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed %q", line)
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed %q", line)
	}
	return n << 10, nil
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
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineTimes{}, err
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (MachineTimes, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return MachineTimes{}, fmt.Errorf("malformed /proc/stat")
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice].
	var v [8]int64
	for i := range v {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return MachineTimes{}, fmt.Errorf("malformed /proc/stat: %q", f[i+1])
		}
		v[i] = n
	}
	var total int64
	for _, n := range v {
		total += n
	}
	busy := total - v[3] - v[4] - v[7]
	return MachineTimes{
		Busy: time.Duration(busy) * clockTick, IRQ: time.Duration(v[5]+v[6]) * clockTick,
		Steal: time.Duration(v[7]) * clockTick, Total: time.Duration(total) * clockTick,
	}, nil
}
