package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server this package started, or one REDIS_URL names.
type Server struct {
	URL  string
	Addr string
	dir  string
	cmd  *exec.Cmd
	mu   sync.Mutex
}

// Start runs a private redis-server on a free port with its files under dir.
func Start(dir string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install -y redis-server): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	s.URL = "redis://" + s.Addr + "/0"
	if err := s.run(bin); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) run(bin string) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
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

// Restart starts a stopped server again on the same address.
func (s *Server) Restart() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	return s.run(bin)
}

// Main is a test package's TestMain body: it starts one server for the whole
// package (unless REDIS_URL is set), runs the tests and stops it.
func Main(m *testing.M, srv **Server) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		*srv = &Server{URL: u}
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redistest:", err)
		if os.Getenv("CI") != "" {
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "redistest: no Redis, tests that need it will skip (set CI to make this fatal)")
	}
	*srv = s
	code := m.Run()
	if s != nil {
		s.Stop()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Client returns a client of srv on a flushed database, closed at test end.
func Client(t testing.TB, srv *Server) redis.UniversalClient {
	t.Helper()
	if srv == nil {
		t.Skip("no redis-server available")
	}
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatalf("parse %s: %v", srv.URL, err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	return rdb
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
