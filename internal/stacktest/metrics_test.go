package stacktest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/redisproc"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// scrape reads base/metrics, failing the test unless it answers 200.
func scrape(t testing.TB, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/metrics: %d\n%s", base, resp.StatusCode, b)
	}
	return string(b)
}

// samples parses a text exposition into series -> value, each series
// written as exposed: name{label="value",...} with labels sorted by name.
func samples(text string) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// series names one sample as the exposition writes it; labels come as
// name, value pairs and must be given sorted by name.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name + "{")
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i] + `="` + labels[i+1] + `"`)
	}
	return b.String() + "}"
}

// enqueueDirect puts a predict task on a queue the way the API does, but
// around its validation, so tests can hand workers what the API refuses.
func (s *stack) enqueueDirect(lane jobs.Lane, inputs string, retention time.Duration) string {
	s.t.Helper()
	p := jobs.PredictPayload{RequestID: jobs.NewRequestID(), Tenant: "acme", ModelID: "21",
		Inputs: json.RawMessage(inputs), EnqueuedAt: time.Now().UnixMilli()}
	task, err := jobs.NewPredictTask(p, jobs.TaskOptions{Pool: jobs.DefaultPool, Lane: lane, Retention: retention, MaxRetry: 3})
	if err != nil {
		s.t.Fatal(err)
	}
	c := asynq.NewClientFromRedisClient(s.rdb)
	if _, err := c.Enqueue(task); err != nil {
		s.t.Fatal(err)
	}
	return p.RequestID
}

// Sync, async, failing and batch traffic moves the named series of both
// tiers by exactly what was sent; the backlog signal turns on when work
// waits and no worker is ready.
func TestMetricsFollowTraffic(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{Batch: api.BatchConfig{ChunkRows: 64}}})
	var w *worker.Worker
	var health string
	for w, health = range s.health {
	}
	apiBefore, workerBefore := samples(scrape(t, s.url)), samples(scrape(t, health))
	body := []byte(`{"inputs": ` + lead + `}`)

	for range 2 {
		if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != 200 {
			t.Fatalf("sync predict: %d %s", r.code, r.body)
		}
	}
	r := s.do("POST", "/api/v1/models/21/predict", body, map[string]string{"Prefer": "respond-async"})
	if r.code != 202 {
		t.Fatalf("async predict: %d %s", r.code, r.body)
	}
	if r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": {"company_size": "huge"}}`), nil); r.code != 422 {
		t.Fatalf("invalid input: %d %s", r.code, r.body)
	}
	if r := s.do("POST", "/api/v1/models/99/predict", body, nil); r.code != 404 {
		t.Fatalf("unknown model: %d %s", r.code, r.body)
	}
	s.enqueueDirect(jobs.LaneAsync, `"not an object"`, time.Minute) // fails on the worker, for good
	batch := s.acceptedBatch(s.submitBatch(leadsCSV(t, 130, nil), "text/csv", "", nil))
	s.waitBatch(batch, 30*time.Second)

	const chunks = 3 // 130 rows in chunks of 64
	tasks := func(queue, outcome string) string {
		return series("hokusai_worker_tasks_total", "model_id", "21", "outcome", outcome, "queue", queue)
	}
	var ws map[string]float64
	eventually(t, 20*time.Second, func() bool {
		ws = samples(scrape(t, health))
		return ws[tasks("default:async", "succeeded")] == 1 && ws[tasks("default:async", "invalid_input")] == 1 &&
			ws[tasks("default:batch", "succeeded")] == chunks
	}, "worker task counters never settled:\n%s", scrape(t, health))
	as := samples(scrape(t, s.url))
	lines := 0
	for _, l := range strings.Split(s.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "task" && m["batch_id"] == batch &&
			m["queue"] == "default:batch" && m["model_id"] == "21" && m["outcome"] == "succeeded" && m["rows"] != nil {
			lines++
		}
	}
	if lines != chunks {
		t.Errorf("%d task lines for the batch's chunks, want %d", lines, chunks)
	}

	predict := func(code string) string {
		return series("hokusai_http_requests_total", "code", code, "method", "POST", "route", "/api/v1/models/:id/predict")
	}
	for _, c := range []struct {
		tier   string
		now    map[string]float64
		before map[string]float64
		name   string
		delta  float64
	}{
		{"api", as, apiBefore, predict("200"), 2},
		{"api", as, apiBefore, predict("202"), 1},
		{"api", as, apiBefore, predict("422"), 1},
		{"api", as, apiBefore, predict("404"), 1},
		{"api", as, apiBefore, series("hokusai_http_request_duration_seconds_count", "code", "200", "method", "POST", "route", "/api/v1/models/:id/predict"), 2},
		{"api", as, apiBefore, series("hokusai_http_requests_total", "code", "202", "method", "POST", "route", "/api/v1/models/:id/batches"), 1},
		{"api", as, apiBefore, series("hokusai_http_rejected_total", "code", "invalid_input"), 1},
		{"api", as, apiBefore, series("hokusai_http_rejected_total", "code", "model_not_found"), 1},
		{"api", as, apiBefore, series("hokusai_api_sync_wait_seconds_count", "outcome", "replied"), 2},
		{"api", as, apiBefore, series("hokusai_api_sync_wait_seconds_count", "outcome", "timeout"), 0},
		{"api", as, apiBefore, series("hokusai_queue_processed_total", "queue", "default:sync"), 2},
		{"api", as, apiBefore, series("hokusai_queue_processed_total", "queue", "default:async"), 2},
		{"api", as, apiBefore, series("hokusai_queue_failed_total", "queue", "default:async"), 1},
		{"api", as, apiBefore, series("hokusai_queue_processed_total", "queue", "default:batch"), chunks},
		{"api", as, apiBefore, series("hokusai_queue_tasks", "queue", "default:async", "state", "archived"), 1},
		{"worker", ws, workerBefore, tasks("default:sync", "succeeded"), 2},
		{"worker", ws, workerBefore, series("hokusai_worker_task_duration_seconds_count", "model_id", "21", "outcome", "succeeded", "queue", "default:sync"), 2},
		{"worker", ws, workerBefore, series("hokusai_worker_queue_wait_seconds_count", "queue", "default:sync"), 2},
		{"worker", ws, workerBefore, series("hokusai_worker_inference_seconds_per_row_count", "model_id", "21"), 3 + chunks},
	} {
		if got := c.now[c.name] - c.before[c.name]; got != c.delta {
			t.Errorf("%s %s moved by %v, want %v", c.tier, c.name, got, c.delta)
		}
	}
	for name, want := range map[string]float64{
		series("hokusai_worker_ready"):                                                       1,
		series("hokusai_worker_state", "state", "ready"):                                     1,
		series("hokusai_worker_model_load_seconds_count", "model_id", "21", "outcome", "ok"): 1,
		series("hokusai_worker_model_cache_misses_total"):                                    1,
		series("hokusai_worker_model_cache_loads_total", "outcome", "ok"):                    1,
		series("hokusai_worker_token_refresh_errors_total"):                                  0,
	} {
		if got, ok := ws[name]; !ok || got != want {
			t.Errorf("worker %s = %v (exported %t), want %v", name, got, ok, want)
		}
	}
	if ws[series("hokusai_worker_model_cache_bytes")] <= 0 {
		t.Errorf("the model cache holds no bytes after a load")
	}
	for name, want := range map[string]float64{
		series("hokusai_queue_backlog", "lane", "sync", "pool", "default"):  0,
		series("hokusai_queue_backlog", "lane", "async", "pool", "default"): 0,
		series("hokusai_queue_backlog", "lane", "batch", "pool", "default"): 0,
		series("hokusai_ready_workers", "pool", "default"):                  1,
		series("hokusai_backlog_without_ready_worker", "pool", "default"):   0,
	} {
		if got, ok := as[name]; !ok || got != want {
			t.Errorf("api %s = %v (exported %t), want %v", name, got, ok, want)
		}
	}

	// No ready worker and work waiting: the signal an operator alerts on.
	s.stopWorker(w)
	s.enqueueDirect(jobs.LaneAsync, lead, time.Minute)
	eventually(t, 10*time.Second, func() bool {
		as = samples(scrape(t, s.url))
		return as[series("hokusai_backlog_without_ready_worker", "pool", "default")] == 1
	}, "backlog without a ready worker never flagged:\n%s", scrape(t, s.url))
	for lane, want := range map[string]float64{"sync": 0, "async": 1, "batch": 0} {
		if got := as[series("hokusai_queue_backlog", "lane", lane, "pool", "default")]; got != want {
			t.Errorf("%s backlog %v, want %v", lane, got, want)
		}
	}
}

// With Redis gone, a predict whose key is cached fails to enqueue: the API
// counts the enqueue error and the rejection, and /metrics still answers,
// naming the queues it could not read.
func TestMetricsWhileRedisIsDown(t *testing.T) {
	own, err := redisproc.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Stop)
	s := startStack(t, stackOptions{redisURL: own.URL, api: api.Config{KeyCacheTTL: time.Hour}})
	body := []byte(`{"inputs": ` + lead + `}`)
	if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != 200 {
		t.Fatalf("before: %d %s", r.code, r.body)
	}
	own.Stop()
	if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != 503 || r.json(t)["code"] != "queue_unavailable" {
		t.Fatalf("while down: %d %s", r.code, r.body)
	}
	m := samples(scrape(t, s.url))
	for name, want := range map[string]float64{
		series("hokusai_api_enqueue_errors_total", "queue", "default:sync"):                                           1,
		series("hokusai_http_rejected_total", "code", "queue_unavailable"):                                            1,
		series("hokusai_queue_stats_errors_total", "queue", "default:sync"):                                           1,
		series("hokusai_queue_stats_errors_total", "queue", "default:batch"):                                          1,
		series("hokusai_http_requests_total", "code", "503", "method", "POST", "route", "/api/v1/models/:id/predict"): 1,
	} {
		if got := m[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, health := range s.health {
		scrape(t, health)
	}
}
