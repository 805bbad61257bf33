package stacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/redisconn"
	"github.com/hokusai-ai/inference-queue/internal/redisproc"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/worker"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// demoModel is the absolute path of the demo model folder.
func demoModel(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "models", "sales-lead-scoring")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Fatalf("demo model missing: %v", err)
	}
	return dir
}

// stack is one API and zero or more workers on one Redis.
type stack struct {
	t    testing.TB
	url  string
	rdb  redis.UniversalClient
	key  string
	logs *syncBuffer
	api  *api.Server
	seen syncBuffer // every response body, for leak checks
	// health is each worker's health server (/livez, /readyz, /metrics).
	health map[*worker.Worker]string
	stops  map[*worker.Worker]func()
	tracer trace.TracerProvider
}

type stackOptions struct {
	api      api.Config
	redisURL string // default: the package's server, flushed
	noWorker bool
	specs    []registry.Spec
	tracer   trace.TracerProvider // for the API and every worker; nil: tracing off
}

// ownRedis starts a redis-server for one test, which may stop and restart
// it, or read its memory from its start.
func ownRedis(t testing.TB) *redisproc.Server {
	t.Helper()
	own, err := redisproc.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Stop)
	return own
}

func newRedis(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	if strings.HasPrefix(url, "redis-sentinel://") {
		rdb, err := redisconn.Open(url, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1 // fail fast while a test has Redis stopped
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func startStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	url := o.redisURL
	if url == "" {
		redistest.Client(t, srv) // flushes
		url = srv.URL
	}
	s := &stack{t: t, rdb: newRedis(t, url), logs: &syncBuffer{}, health: map[*worker.Worker]string{},
		stops: map[*worker.Worker]func(){}, tracer: o.tracer}
	o.api.TracerProvider = o.tracer
	ctx := context.Background()
	specs := o.specs
	if specs == nil {
		specs = []registry.Spec{{ID: "21", Name: "Sales Lead Scoring Model", Source: "file://" + demoModel(t)}}
	}
	for i := range specs {
		specs[i] = specs[i].WithDefaults()
	}
	if err := registry.Apply(ctx, s.rdb, specs); err != nil {
		t.Fatal(err)
	}
	// The harness's own key (waitReady polls with it) is never throttled;
	// tests of the default limit create keys of their own.
	key, _, err := apikey.Create(ctx, s.rdb, "acme", "unlimited")
	if err != nil {
		t.Fatal(err)
	}
	s.key = key
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	a, err := api.NewServer(o.api, newRedis(t, url), log.With("tier", "api"))
	if err != nil {
		t.Fatal(err)
	}
	s.api = a
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	actx, stop := context.WithCancel(ctx)
	apiDone := make(chan struct{})
	go func() { defer close(apiDone); _ = a.Run(actx, ln) }()
	t.Cleanup(func() { stop(); <-apiDone })
	if !o.noWorker {
		s.startWorker(url, worker.Config{})
		s.waitReady("21")
	}
	return s
}

// startWorker runs a worker with local sources until the test ends or stop
// is called; stop drains it as SIGTERM does and waits until it has.
func (s *stack) startWorker(url string, cfg worker.Config) (w *worker.Worker, stop func()) {
	s.t.Helper()
	return s.startWorkerWith(url, cfg, worker.NewSources(worker.SourcesConfig{}))
}

// startWorkerWith runs a worker loading from sources, with its health
// server (and /metrics) on a loopback port recorded in s.health.
func (s *stack) startWorkerWith(url string, cfg worker.Config, sources *worker.Sources) (w *worker.Worker, stop func()) {
	s.t.Helper()
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.RetryInterval = 50 * time.Millisecond
	cfg.MaxRetryInterval = 200 * time.Millisecond
	cfg.WebhookAllowPrivate = true // the receivers are on loopback
	cfg.TracerProvider = s.tracer
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	w, err := worker.New(cfg, newRedis(s.t, url), sources.Load, log.With("tier", "worker"))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := w.Register(sources); err != nil {
		s.t.Fatal(err)
	}
	hs := httptest.NewServer(w.HealthHandler())
	s.t.Cleanup(hs.Close)
	s.health[w] = hs.URL
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	stop = func() { cancel(); <-done }
	s.t.Cleanup(stop)
	s.stops[w] = stop
	return w, stop
}

// stopWorker drains w as SIGTERM does and waits until it has.
func (s *stack) stopWorker(w *worker.Worker) { s.stops[w]() }

// buildWorker builds cmd/hokusai-worker for tests that need a worker in
// a process of its own (to signal or kill it).
func buildWorker(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hokusai-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/hokusai-worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	return bin
}

// startWorkerProcess starts bin, a hokusai-worker, on the stack's Redis
// with env added to the test's, its output in s.logs; it is killed when
// the test ends.
func (s *stack) startWorkerProcess(bin, url string, env ...string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(bin, "--redis-url", url, "--health-addr", "127.0.0.1:0")
	cmd.Env = append(append(os.Environ(), "HOME="+s.t.TempDir(), "HF_HOME="+s.t.TempDir(), "HOKUSAI_LOG_LEVEL=warn"), env...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", bin, err)
	}
	s.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// waitWorkers polls model 21's health until n workers are ready.
func (s *stack) waitWorkers(n int) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, func() bool {
		var h struct {
			ReadyWorkers int `json:"ready_workers"`
		}
		r := s.do("GET", "/api/v1/models/21/health", nil, nil)
		return r.code == 200 && json.Unmarshal(r.body, &h) == nil && h.ReadyWorkers == n
	}, "%d workers never became ready; logs:\n%s", n, s.logs)
}

// waitReady polls model health until a worker serves id.
func (s *stack) waitReady(id string) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, func() bool {
		var h struct {
			InferenceReady bool `json:"inference_ready"`
		}
		r := s.do("GET", "/api/v1/models/"+id+"/health", nil, nil)
		return r.code == 200 && json.Unmarshal(r.body, &h) == nil && h.InferenceReady
	}, "model %s never became ready; logs:\n%s", id, s.logs)
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second}

// do sends a request with the stack's key unless headers set another.
func (s *stack) do(method, path string, body []byte, headers map[string]string) reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("X-API-Key", s.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, _ = s.seen.Write(b)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

// doText is do with the body as text, none when empty: for tables of
// requests.
func (s *stack) doText(method, path, body string, headers map[string]string) reply {
	s.t.Helper()
	if body == "" {
		return s.do(method, path, nil, headers)
	}
	return s.do(method, path, []byte(body), headers)
}

func eventually(t testing.TB, within time.Duration, ok func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const lead = `{"company_size": 250, "engagement_score": 82, "website_visits": 14, "email_opens": 9,
	"content_downloads": 3, "demo_requested": true, "budget_confirmed": true, "industry": "Technology",
	"decision_timeline": "1-3 months", "title": "VP of Sales"}`
