package loadgen

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/procfs"
)

// fakeProc is a proc filesystem with process 4242 and the machine's stat.
func fakeProc(t *testing.T) procfs.FS {
	t.Helper()
	dir := t.TempDir()
	err := os.CopyFS(dir, fstest.MapFS{
		// The command name may hold spaces and parentheses; utime and
		// stime (fields 14 and 15) are 250 and 75 ticks.
		"4242/stat": {Data: []byte("4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 8 0 100 1000000 500 18446744073709551615" +
			strings.Repeat(" 0", 27) + "\n")},
		"4242/status": {Data: []byte("Name:\tmy (odd) cmd\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t8\n")},
		"stat":        {Data: []byte("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 0 0\nintr 1 0\nctxt 5\nbtime 1700000000\nprocesses 9\nprocs_running 1\nprocs_blocked 0\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestProcReaders(t *testing.T) {
	fs := fakeProc(t)
	if got, err := processCPU(fs, 4242); err != nil || got != 3250*time.Millisecond {
		t.Errorf("processCPU = %v, %v; want 3.25s", got, err)
	}
	if rss, peak, err := processMemory(fs, 4242); err != nil || rss != 1024<<10 || peak != 2048<<10 {
		t.Errorf("processMemory = %d, %d, %v; want 1 MiB, 2 MiB", rss, peak, err)
	}
	m, err := machineCPU(fs)
	want := MachineTimes{Busy: 1600 * time.Millisecond, IRQ: 50 * time.Millisecond, Steal: 100 * time.Millisecond, Total: 9900 * time.Millisecond}
	if err != nil || m != want {
		t.Errorf("machineCPU = %+v, %v; want %+v", m, err, want)
	}
	if _, err := processCPU(fs, 1); err == nil {
		t.Error("processCPU of a missing process succeeded")
	}
}

// The real /proc: this process has used some CPU and memory.
func TestProcReadersOnThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := ProcessCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
	if rss, peak, err := ProcessMemory(os.Getpid()); err != nil || rss <= 0 || peak < rss {
		t.Errorf("ProcessMemory = %d, %d, %v", rss, peak, err)
	}
	if m, err := MachineCPU(); err != nil || m.Total <= 0 || m.Busy > m.Total {
		t.Errorf("MachineCPU = %+v, %v", m, err)
	}
}
