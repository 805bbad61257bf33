package redisproc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Server is a redis-server this package started.
type Server struct {
	URL  string
	Addr string
	dir  string
	args []string
	cmd  *exec.Cmd
	mu   sync.Mutex
}

// Start runs a private redis-server on a free port with its files under dir.
func Start(dir string) (*Server, error) { return StartWith(dir) }

// StartWith is Start with more redis-server options, which override the
// defaults ("--appendonly", "yes"; "--replicaof", "127.0.0.1", "6379";
// "--maxmemory", "8mb"), kept across Restart.
func StartWith(dir string, args ...string) (*Server, error) {
	bin, port, err := binAndPort("redis-server")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, args: args}
	s.URL = "redis://" + s.Addr + "/0"
	if err := s.run(bin); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) run(bin string) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"}, s.args...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return waitUp(s.Addr, 5*time.Second)
}

// Stop kills the server; Restart brings it back on the same port, empty.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Signal sends sig to the running server: SIGSTOP freezes it (clients'
// commands hang until SIGCONT), as a stalled host or network would.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("redis-server %s is not running", s.Addr)
	}
	return s.cmd.Process.Signal(sig)
}

// Restart starts a stopped server again on the same address.
func (s *Server) Restart() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	return s.run(bin)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitUp(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if line == "+PONG\r\n" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not answer within %s", addr, within)
}

// StartSentinel runs a redis-sentinel on a free port, with its config file
// under dir, watching master as name (quorum 1): it calls the master down
// after downAfter without an answer, and then promotes a replica. A
// sentinel cannot be restarted (Restart starts a redis-server).
func StartSentinel(dir string, master *Server, name string, downAfter time.Duration) (*Server, error) {
	bin, port, err := binAndPort("redis-sentinel")
	if err != nil {
		return nil, err
	}
	host, mport, _ := net.SplitHostPort(master.Addr)
	conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(port)+".conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n"+
		"sentinel down-after-milliseconds %s %d\nsentinel failover-timeout %s 3000\n",
		port, dir, name, host, mport, name, downAfter.Milliseconds(), name)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	s.URL = "redis-sentinel://" + s.Addr + "/" + name
	cmd := exec.Command(bin, conf, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-sentinel: %w", err)
	}
	s.cmd = cmd
	return s, waitUp(s.Addr, 5*time.Second)
}

// binAndPort finds the Debian package's binary name and a free port for it.
func binAndPort(name string) (string, int, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", 0, fmt.Errorf("%s is not installed (apt-get install -y %s): %w", name, name, err)
	}
	port, err := freePort()
	return bin, port, err
}
