package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// cpuUse is the CPU time (user and system) that the processes of a step
// used while it was measured: the RADIUS server under test, slapd, and
// this process (the load generator, or go-ldap's clients for the
// ceilings). On a small machine they share the cores, so what one spends
// the others cannot; the time per operation shows who spends it.
type cpuUse struct {
	server, slapd, load time.Duration
	hasServer           bool
	// stolen is the time the machine's virtual CPUs were ready but the
	// host ran something else (/proc/stat's steal): on a shared host, the
	// sign of a noisy step.
	stolen time.Duration
}

// cpuMeter samples the processes at the start of a step.
type cpuMeter struct {
	server, slapd int
	t0            cpuUse
}

// startCPU samples server (0 for none), slapd and this process.
func startCPU(server, slapd int) *cpuMeter {
	m := &cpuMeter{server: server, slapd: slapd}
	m.t0 = m.sample()
	return m
}

func (m *cpuMeter) sample() cpuUse {
	u := cpuUse{slapd: procCPU(m.slapd), load: selfCPU(), stolen: stealTime()}
	if m.server != 0 {
		u.server, u.hasServer = procCPU(m.server), true
	}
	return u
}

// stop records in s the CPU time used since startCPU.
func (m *cpuMeter) stop(s *stats) {
	if s == nil {
		return
	}
	t1 := m.sample()
	s.cpu = &cpuUse{server: t1.server - m.t0.server, slapd: t1.slapd - m.t0.slapd, load: t1.load - m.t0.load, hasServer: t1.hasServer,
		stolen: t1.stolen - m.t0.stolen}
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU reads utime+stime of every thread of pid from /proc/PID/stat;
// 0 when it cannot.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, may hold spaces; the fields after it
	// start at state (field 3). utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * clockTick
}

// stealTime is the machine's steal time over all CPUs since boot: the
// eighth number of /proc/stat's "cpu" line; 0 when it cannot be read.
func stealTime() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	n, err := strconv.ParseInt(string(f[8]), 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(n) * clockTick
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perOp is d per successful operation of s, in microseconds.
func perOp(d time.Duration, s *stats) string {
	if s.ok == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)/float64(s.ok))
}

// cpuRow describes s's CPU use: per operation for each process, in all,
// and how busy the machine's cores were.
func cpuRow(what string, w int, s *stats, cores int) string {
	if s == nil || s.cpu == nil || s.ok == 0 {
		return ""
	}
	c := s.cpu
	server := "-"
	if c.hasServer {
		server = perOp(c.server, s)
	}
	all := c.server + c.slapd + c.load
	busy, stolen := 0.0, 0.0
	if s.elapsed > 0 && cores > 0 {
		busy = 100 * float64(all) / float64(s.elapsed) / float64(cores)
		stolen = 100 * float64(c.stolen) / float64(s.elapsed) / float64(cores)
	}
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %.0f%% | %.1f%% |", what, w, server, perOp(c.slapd, s), perOp(c.load, s), perOp(all, s), busy, stolen)
}
