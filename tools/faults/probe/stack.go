package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/redisproc"
)

// stack is an API and a worker process on one Redis URL, started from the
// binaries `make build` writes to bin/ (or $HOKUSAI_BIN).
type stack struct {
	dir, redisURL string
	base, key     string
	health        string // the worker's health and metrics address
	procs         []*exec.Cmd
}

func bin(name string) string {
	d := os.Getenv("HOKUSAI_BIN")
	if d == "" {
		d = "bin"
	}
	return filepath.Join(d, name)
}

// startStack applies a registry with the demo model, issues an unlimited
// key, and starts the API and one worker with env on top of their
// defaults; it returns once the model is ready to serve.
func startStack(ctx context.Context, dir, redisURL string, env ...string) (*stack, error) {
	s := &stack{dir: dir, redisURL: redisURL}
	model, err := filepath.Abs("models/sales-lead-scoring")
	if err != nil {
		return nil, err
	}
	reg := filepath.Join(dir, "registry.yaml")
	yaml := "models:\n  - id: \"21\"\n    name: Sales Lead Scoring Model\n    source: file://" + model + "\n    pool: default\n"
	if err := os.WriteFile(reg, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	if _, err := s.cli(ctx, "models", "apply", "-f", reg); err != nil {
		return nil, err
	}
	key, err := s.cli(ctx, "keys", "create", "--tenant", "faults", "--limit", "unlimited")
	if err != nil {
		return nil, err
	}
	s.key = strings.TrimSpace(key)
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	healthAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.base, s.health = "http://"+apiAddr, "http://"+healthAddr
	common := append([]string{"REDIS_URL=" + redisURL, "HOKUSAI_LOG_LEVEL=warn"}, env...)
	if err := s.start("hokusai-api", append(common, "HOKUSAI_LISTEN="+apiAddr)); err != nil {
		return nil, err
	}
	if err := s.start("hokusai-worker", append(common, "HOKUSAI_HEALTH_ADDR="+healthAddr)); err != nil {
		s.stop()
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var h struct {
			InferenceReady bool `json:"inference_ready"`
		}
		if code, body := s.do(ctx, "GET", "/api/v1/models/21/health", nil, nil); code == 200 && json.Unmarshal(body, &h) == nil && h.InferenceReady {
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("model 21 never became ready; logs in %s", dir)
}

// cli runs the hokusai CLI against the stack's Redis and returns its output.
func (s *stack) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("hokusai"), args...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+s.redisURL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hokusai %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// start runs a binary with env, its output in a log file under s.dir.
func (s *stack) start(name string, env []string) error {
	log, err := os.Create(filepath.Join(s.dir, name+"-"+strconv.Itoa(len(s.procs))+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin(name))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s (run make build first): %w", name, err)
	}
	s.procs = append(s.procs, cmd)
	return nil
}

// stop sends SIGTERM to the processes this stack started and waits for
// them (SIGKILL after 15 s).
func (s *stack) stop() {
	for _, p := range s.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range s.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// do sends a request with the stack's key; code 0 is no answer (a
// connection error or the client's 10 s timeout: a hang).
func (s *stack) do(ctx context.Context, method, path string, body []byte, headers map[string]string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("X-API-Key", s.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// succeededTasks reads the worker's count of async predicts it finished
// with a result, from its /metrics: runs, not distinct jobs.
func (s *stack) succeededTasks(ctx context.Context) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.health+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "hokusai_worker_tasks_total{") && strings.Contains(line, `outcome="succeeded"`) &&
			strings.Contains(line, `queue="default:async"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

// freeAddr is a loopback address free now, for a process to listen on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// redisStack starts a redis-server with redisArgs and a stack on it with
// env; stop ends both.
func redisStack(ctx context.Context, dir string, redisArgs []string, env ...string) (s *stack, rs *redisproc.Server, stop func(), err error) {
	rs, err = redisproc.StartWith(sub(dir, "redis"), redisArgs...)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err = startStack(ctx, dir, rs.URL, env...)
	if err != nil {
		rs.Stop()
		return nil, nil, nil, err
	}
	return s, rs, func() { s.stop(); rs.Stop() }, nil
}
