package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicksPerSec is USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat: 100 on every Linux architecture Go runs on (the
// kernel fixes it in its ABI whatever its internal HZ).
const clockTicksPerSec = 100

// procStat is what the harness reads of one process's /proc/<pid>/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // user + system time of all its threads
}

// parseProcStat reads the fields after the ")" that ends the command name
// (which may hold spaces and parentheses): state, ppid, ... utime is the
// 14th field of the line, stime the 15th.
func parseProcStat(line string) (procStat, bool) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 { // f[0] is field 3 (state), so utime is f[11], stime f[12]
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clockTicksPerSec}, true
}

// treeUsage is the memory and CPU time of some processes and all their
// descendants.
type treeUsage struct {
	memBytes int64
	cpu      time.Duration
}

// processTreeUsage walks /proc once: the PSS (or RSS) and the CPU time of
// pids and their descendants. A child that has exited is gone from the
// sum, which is why systems are measured over the long-lived processes
// (onsale, a shim, redis-server, PostgreSQL's pooled backends).
func processTreeUsage(pids []int) treeUsage {
	var u treeUsage
	tree, stats := processTree(pids)
	for _, pid := range tree {
		u.memBytes += memBytes(pid)
		u.cpu += stats[pid].cpu
	}
	return u
}

// processTreeSwitches is how many times the threads of pids and their
// descendants have left a core so far, voluntarily (a syscall that
// blocks, a futex wait, a sleep) or not: the sum of each thread's
// voluntary_ctxt_switches and nonvoluntary_ctxt_switches. On a machine
// where a switch is dear (a VM's), it is what a server's hand-offs cost
// beyond its own work. A thread that has exited is gone from the sum.
func processTreeSwitches(pids []int) int64 {
	tree, _ := processTree(pids)
	var n int64
	for _, pid := range tree {
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/status")
			if err == nil {
				n += parseSwitches(string(b))
			}
		}
	}
	return n
}

// parseSwitches sums the two context-switch counts of a /proc status file.
func parseSwitches(status string) int64 {
	var n int64
	for line := range strings.Lines(status) {
		for _, key := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
				if err == nil {
					n += v
				}
			}
		}
	}
	return n
}

// processTree walks /proc once: pids and all their descendants, and the
// stat line of every process.
func processTree(pids []int) ([]int, map[int]procStat) {
	if len(pids) == 0 {
		return nil, nil
	}
	children := map[int][]int{}
	stats := map[int]procStat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, ok := parseProcStat(string(b)); ok {
			stats[pid] = st
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	var tree []int
	seen := map[int]bool{}
	stack := append([]int(nil), pids...)
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		tree = append(tree, pid)
		stack = append(stack, children[pid]...)
	}
	return tree, stats
}

// selfCPU is the CPU time the harness process (the load generator) has
// used so far, all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuReading is the CPU time of the server and of the generator at one
// instant.
type cpuReading struct {
	at        time.Time
	server    time.Duration
	generator time.Duration
	switches  int64 // the server's context switches (phase readings only)
}

// cores is how many cores the server and the generator used on average
// between r and a later reading.
func (r cpuReading) cores(later cpuReading) (server, generator float64) {
	wall := later.at.Sub(r.at).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	return (later.server - r.server).Seconds() / wall, (later.generator - r.generator).Seconds() / wall
}
