package reliability

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// Limits of one server start.
const (
	listenWaitMax  = time.Minute // onsale listens before it recovers
	readyPollEvery = 2 * time.Millisecond
	readyPollsMax  = 300_000 // 10 min of polling /readyz: recovery of a large log comes first
	logTailLines   = 40      // server log lines kept for error messages
)

// BuildBinary builds the onsale command of this module into dir and returns
// its path. It runs `go build` from the working directory, which must be
// inside the module (tests and `go run` are).
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "onsale")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/onsale/onsale").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cannot build onsale: %w\n%s", err, out)
	}
	return bin, nil
}

// server is one run of the onsale binary.
type server struct {
	cmd           *exec.Cmd
	addr          string        // host:port it listens on
	readyIn       time.Duration // process start until GET /readyz answered 200
	recovered     recoveredLine // what its "recovered" log line said
	logOpenMs     int64         // what its "log opened" line said
	exited        chan struct{} // closed once the process has been waited for
	recoveredSeen chan struct{} // closed once the "recovered" line was read
	waitErr       error         // Wait's result, after exited

	mu   sync.Mutex
	tail []string // last lines of its log
}

// recoveredLine is main.go's log line after engine.Open.
type recoveredLine struct {
	Ms     int64 `json:"ms"`
	Orders int   `json:"orders"`
	Sales  int   `json:"sales"`
}

// startServer starts bin with args (which must include -addr 127.0.0.1:0),
// learns its address from its "listening" log line, and polls /readyz until
// it answers 200. readyIn is measured from just before the exec.
func startServer(bin string, args []string) (*server, error) {
	cmd := exec.Command(bin, args...)
	// If this tool dies, its server does not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), recoveredSeen: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	listening := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		s.readLog(stderr, listening)
		close(scanned)
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to the end first
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	select {
	case s.addr = <-listening:
	case <-s.exited:
		return nil, fmt.Errorf("onsale exited before listening (%v):\n%s", s.waitErr, s.logTail())
	case <-time.After(listenWaitMax):
		s.kill()
		return nil, fmt.Errorf("onsale did not listen within %s:\n%s", listenWaitMax, s.logTail())
	}
	if err := api.CheckLoopback(s.addr); err != nil {
		s.kill()
		return nil, err
	}
	if err := s.waitReady(); err != nil {
		s.kill()
		return nil, err
	}
	s.readyIn = time.Since(start)
	// The server logs "recovered" before it turns ready, but this side
	// reads its log on another goroutine, which may not have got there yet.
	select {
	case <-s.recoveredSeen:
	case <-s.exited:
	case <-time.After(listenWaitMax):
		s.kill()
		return nil, fmt.Errorf("onsale turned ready without a \"recovered\" log line within %s:\n%s", listenWaitMax, s.logTail())
	}
	return s, nil
}

// readLog drains the server's stderr (a full pipe would block its logger),
// sends the address of the "listening" line once, and keeps the tail.
func (s *server) readLog(r io.Reader, listening chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
			recoveredLine
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			switch line.Msg {
			case "log opened":
				s.mu.Lock()
				s.logOpenMs = line.Ms
				s.mu.Unlock()
			case "recovered":
				s.mu.Lock()
				s.recovered = line.recoveredLine
				s.mu.Unlock()
				select {
				case <-s.recoveredSeen:
				default:
					close(s.recoveredSeen)
				}
			case "listening":
				if !sent {
					listening <- line.Addr
					sent = true
				}
			}
		}
		s.mu.Lock()
		s.tail = append(s.tail, sc.Text())
		if len(s.tail) > logTailLines {
			s.tail = s.tail[len(s.tail)-logTailLines:]
		}
		s.mu.Unlock()
	}
}

// waitReady polls /readyz (bounded) until it answers 200. main.go marks the
// server ready right after it listens, so this is normally one request.
func (s *server) waitReady() error {
	c, err := api.NewClient(api.ClientConfig{Addr: s.addr, MaxConns: 1, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	for range readyPollsMax {
		if c.Status("/readyz") == 200 {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("onsale exited before /readyz was 200 (%v):\n%s", s.waitErr, s.logTail())
		case <-time.After(readyPollEvery): // bounded poll of an observable state
		}
	}
	return fmt.Errorf("/readyz of %s not 200 after %d polls:\n%s", s.addr, readyPollsMax, s.logTail())
}

// kill sends SIGKILL and waits for the process to be gone, so that its
// Pebble lock is released before the next start.
func (s *server) kill() error {
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	return nil
}

// stop sends SIGINT and waits up to grace for a clean exit (status 0).
func (s *server) stop(grace time.Duration) error {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("onsale did not stop cleanly: %v\n%s", s.waitErr, s.logTail())
		}
		return nil
	case <-time.After(grace):
		s.kill()
		return fmt.Errorf("onsale did not stop within %s of SIGINT; killed", grace)
	}
}

// startTimes returns what the server logged about its start: how long
// opening the log and recovering the engine took.
func (s *server) startTimes() (logOpenMs int64, rec recoveredLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logOpenMs, s.recovered
}

func (s *server) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ""
	for _, l := range s.tail {
		out += l + "\n"
	}
	return out
}
