package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the harness started and must stop.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, after done is closed
	log  *os.File
}

// startProc starts bin with args, its output going to logPath. cred, when
// set, runs it as another user (PostgreSQL refuses to run as root).
func startProc(name, logPath string, env []string, cred *syscall.Credential, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	// Pdeathsig: if the harness dies, its servers do not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends sig and waits up to grace for the process to end, then kills
// it. It returns an error if the process had to be killed or exited badly.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	if done, err := p.exited(); done {
		return exitError(p.name, err)
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return exitError(p.name, p.err)
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of %s and was killed", p.name, grace, sig)
	}
}

func exitError(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s exited: %w", name, err)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; the start then fails and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls ready every 50 ms until it reports true, p exits, or
// timeout passes.
func waitFor(p *proc, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited before it was ready (%v); see its log", p.name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within %s; see its log", p.name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// memBytes is a process's proportional set size (shared pages divided
// among the processes that map them, so that PostgreSQL's backends do not
// count its shared buffers once each), or its RSS where PSS is not shown.
func memBytes(pid int) int64 {
	if n := procField("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss:"); n > 0 {
		return n
	}
	return procField("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:")
}

// procField reads a "Name:   123 kB" line of a /proc file, in bytes.
func procField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// dirBytes is the size of the files under dirs.
func dirBytes(dirs []string) int64 {
	var total int64
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil // files come and go under a running server
			}
			if e.Type().IsRegular() {
				if info, err := e.Info(); err == nil {
					total += info.Size()
				}
			}
			return nil
		})
	}
	return total
}

// ErrSkipped marks a system that cannot run here (its binaries are
// missing); the run goes on without it and says so.
var ErrSkipped = errors.New("skipped")

// findBinary looks name up on PATH, then in the extra directories (globs).
func findBinary(name string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, pattern := range extra {
		matches, _ := filepath.Glob(filepath.Join(pattern, name))
		for i := len(matches) - 1; i >= 0; i-- { // highest version last in glob order
			if st, err := os.Stat(matches[i]); err == nil && st.Mode()&0o111 != 0 {
				return matches[i], nil
			}
		}
	}
	return "", fmt.Errorf("%w: %s not found (run bench/install-baselines.sh)", ErrSkipped, name)
}
