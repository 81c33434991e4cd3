package load

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// ProcSample is what /proc says about a process at one moment.
type ProcSample struct {
	At      time.Time
	RSS     int64         // VmRSS, bytes
	PeakRSS int64         // VmHWM, bytes
	CPU     time.Duration // utime + stime
	Threads int
	OpenFDs int
	Sampled bool
}

// sampleProc reads /proc/<pid>/status, stat and fd.
func sampleProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read /proc status: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			s.RSS = n << 10
		case "VmHWM":
			s.PeakRSS = n << 10
		case "Threads":
			s.Threads = int(n)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read /proc stat: %w", err)
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields we want come after its closing parenthesis. utime and stime
	// are fields 14 and 15, i.e. 12th and 13th after field 2.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("parse /proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, errors.New("parse /proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("parse /proc stat: %w", err)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.OpenFDs = len(ents)
	}
	s.Sampled = true
	return s, nil
}

// cpuPercent is the CPU used between two samples in percent of one core.
func cpuPercent(a, b ProcSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 || !a.Sampled || !b.Sampled {
		return 0
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}

// raiseFDLimit lifts the soft RLIMIT_NOFILE to the hard one (the Go
// runtime does it too since 1.19; doing it here makes the number we plan
// with explicit) and returns it.
func raiseFDLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("setrlimit NOFILE %d: %w", rl.Max, err)
		}
	}
	return rl.Cur, nil
}

// agentsPerProcess is how many simulated PBXs fit one process's limit.
func agentsPerProcess(limit uint64) int {
	if limit <= fdReserve {
		return 0
	}
	return int((limit - fdReserve) / fdsPerAgent)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// machineCPU is the busy and total CPU time of the whole machine, from
// the first line of /proc/stat (in clock ticks).
type machineCPU struct {
	At          time.Time
	Busy, Total int64
}

func sampleMachine() (machineCPU, error) {
	m := machineCPU{At: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return m, errors.New("parse /proc/stat: no cpu line")
	}
	var idle int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse /proc/stat: %w", err)
		}
		if i >= 8 { // guest times are already in user and nice
			break
		}
		m.Total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	m.Busy = m.Total - idle
	return m, nil
}

// busyPercent is the machine's busy share between two samples, in percent
// of all CPUs (100 = every core busy).
func busyPercent(a, b machineCPU) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return 100 * float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}
