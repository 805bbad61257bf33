package stacktest

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

const adminToken = "adm_dashboardTestToken"

// A retained task whose hash is gone while its id is still listed (Redis
// evicted it, or an operator deleted it) makes asynq v0.26's memory
// estimate fail, and with it every queue read; /metrics and the dashboard's
// queue pages answer anyway. Once the retention passes and a worker's
// janitor drops the tasks, scrapes go on answering.
func TestScrapeSurvivesExpiredRetainedTasks(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{AdminToken: adminToken}})
	var ids []string
	for range 3 {
		ids = append(ids, s.enqueueDirect(jobs.LaneAsync, lead, 5*time.Second))
	}
	insp := asynq.NewInspectorFromRedisClient(newRedis(t, srv.URL)) // a client without the API's hook
	eventually(t, 10*time.Second, func() bool {
		info, err := insp.GetQueueInfo("default:async")
		return err == nil && info.Completed == len(ids)
	}, "the tasks never completed; logs:\n%s", s.logs)
	ctx := context.Background()
	s.rdb.Del(ctx, queue.TaskKey(jobs.Queue(jobs.DefaultPool, jobs.LaneAsync), ids[0]))
	if n := s.rdb.ZCard(ctx, queue.Key(jobs.Queue(jobs.DefaultPool, jobs.LaneAsync), "completed")).Val(); n != int64(len(ids)) {
		t.Fatalf("%d ids in the completed set, want %d: the case under test did not arise", n, len(ids))
	}
	if _, err := insp.GetQueueInfo("default:async"); err == nil {
		t.Fatal("asynq read the queue without error: the memory-usage failure this test guards against did not occur")
	}
	checkQueueReads(t, s, 3)

	eventually(t, 30*time.Second, func() bool {
		return s.rdb.ZCard(ctx, queue.Key(jobs.Queue(jobs.DefaultPool, jobs.LaneAsync), "completed")).Val() == 0
	}, "the retained tasks never expired")
	checkQueueReads(t, s, 0)
}

// checkQueueReads scrapes /metrics and reads the dashboard's queue pages.
func checkQueueReads(t *testing.T, s *stack, completed float64) {
	t.Helper()
	m := samples(scrape(t, s.url))
	if got, ok := m[series("hokusai_queue_tasks", "queue", "default:async", "state", "completed")]; !ok || got != completed {
		t.Errorf("completed tasks of default:async = %v (exported %t), want %v", got, ok, completed)
	}
	if n := m[series("hokusai_queue_stats_errors_total", "queue", "default:async")]; n != 0 {
		t.Errorf("%v queue stats errors", n)
	}
	for _, path := range []string{"/ops/queues/api/queues", "/ops/queues/api/queues/default:async"} {
		r := s.do("GET", path, nil, map[string]string{"X-API-Key": "", "Authorization": "Bearer " + adminToken})
		if r.code != 200 || !strings.Contains(string(r.body), "default:async") {
			t.Errorf("GET %s: %d %s", path, r.code, r.body)
		}
	}
}

// chromium finds the browser, failing under CI (where it must be
// installed: tools/ensure-deps.sh test) and skipping elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; tools/ensure-deps.sh test installs it")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium)")
	return ""
}

// browserTab starts a headless Chromium with a fresh profile and opens a
// tab on it, both closed when the test ends. The deadline bounds a stuck
// page, not how fast it is.
func browserTab(t *testing.T, browser string) context.Context {
	t.Helper()
	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(browser), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// authorize makes the tab send the admin token as Basic auth, as a
// browser does once its prompt is answered.
func authorize(t *testing.T, ctx context.Context) {
	t.Helper()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+adminToken))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basic}}); err != nil {
		t.Fatal(err)
	}
}

// An operator opens /ops/queues in a browser: refused without credentials,
// and with them the pool's three queues listed with their sizes.
func TestDashboardInBrowser(t *testing.T) {
	browser := chromium(t)
	s := startStack(t, stackOptions{api: api.Config{AdminToken: adminToken, Batch: api.BatchConfig{ChunkRows: 64}}})
	body := []byte(`{"inputs": ` + lead + `}`)
	for range 2 {
		if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != 200 {
			t.Fatalf("sync predict: %d %s", r.code, r.body)
		}
	}
	if r := s.do("POST", "/api/v1/models/21/jobs", body, nil); r.code != 202 {
		t.Fatalf("job: %d %s", r.code, r.body)
	}
	s.waitBatch(s.acceptedBatch(s.submitBatch(leadsCSV(t, 100, nil), "text/csv", "", nil)), 30*time.Second)
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	want := map[string]int{}
	eventually(t, 10*time.Second, func() bool {
		for _, q := range []string{"default:sync", "default:async", "default:batch"} {
			info, err := insp.GetQueueInfo(q)
			if err != nil || info.Active+info.Pending > 0 {
				return false
			}
			want[q] = info.Size
		}
		return true
	}, "the queues never settled")

	ctx := browserTab(t, browser)

	// Without credentials: 401 with a Basic challenge, which headless
	// Chromium, having no one to prompt, reports as a failed navigation.
	if r := s.do("GET", "/ops/queues", nil, map[string]string{"X-API-Key": ""}); r.code != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("/ops/queues without credentials: %d %q", r.code, r.header.Get("WWW-Authenticate"))
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.url+"/ops/queues"))
	refused := err == nil && resp.Status == 401 || err != nil && strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS")
	if !refused {
		t.Fatalf("the browser without credentials: %v %v, want a 401 or ERR_INVALID_AUTH_CREDENTIALS", resp, err)
	}

	authorize(t, ctx)
	if resp, err = chromedp.RunResponse(ctx, chromedp.Navigate(s.url+"/ops/queues")); err != nil || resp.Status != 200 {
		t.Fatalf("/ops/queues with Basic auth: %v %v", resp, err)
	}
	// The dashboard's queue table: one row per queue, its cells as shown.
	const readRows = `Array.from(document.querySelectorAll("table tr")).map(r => Array.from(r.cells).map(c => c.innerText.trim()))`
	var rows [][]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rows, err = chromedp.Run(ctx, chromedp.Evaluate[[][]string](readRows)); err != nil {
			t.Fatal(err)
		}
		if got := sizesShown(rows); len(got) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ops-queues.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", file, len(shot))
	got := sizesShown(rows)
	for q, size := range want {
		if got[q] != fmt.Sprint(size) {
			t.Errorf("the dashboard shows %s with size %q, want %d; table: %q", q, got[q], size, rows)
		}
	}

	// Beside it, the workers page: the one worker, ready, on every lane,
	// serving model 21.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/ops/workers")); err != nil {
		t.Fatal(err)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#workers").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for w := range s.health {
		id = w.Heartbeat().WorkerID
	}
	for _, want := range []string{id, "default", "sync, async, batch", "ready", "21@"} {
		if !strings.Contains(page, want) {
			t.Errorf("the workers page lacks %q:\n%s", want, page)
		}
	}
}

// sizesShown reads queue -> size from the dashboard's table rows, using the
// header row to find the columns.
func sizesShown(rows [][]string) map[string]string {
	sizes := map[string]string{}
	queueCol, sizeCol := -1, -1
	for _, r := range rows {
		for i, cell := range r {
			switch strings.ToLower(cell) {
			case "queue":
				queueCol = i
			case "size":
				sizeCol = i
			}
		}
		if queueCol >= 0 && sizeCol >= 0 && len(r) > max(queueCol, sizeCol) && strings.HasPrefix(r[queueCol], "default:") {
			sizes[r[queueCol]] = r[sizeCol]
		}
	}
	return sizes
}

// With Redis down the dashboard's data calls answer 503 queue_unavailable
// as JSON, naming no host, where asynqmon would answer a text 500 of the
// Redis error; its page still loads, and its calls work again when Redis
// is back.
func TestDashboardRedisDownIsJSON(t *testing.T) {
	own := ownRedis(t)
	s := startStack(t, stackOptions{redisURL: own.URL, noWorker: true, api: api.Config{AdminToken: adminToken}})
	admin := map[string]string{"X-API-Key": "", "Authorization": "Bearer " + adminToken}
	page := func() {
		t.Helper()
		if r := s.do("GET", "/ops/queues", nil, admin); r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("the dashboard's page: %d %q", r.code, r.header.Get("Content-Type"))
		}
	}
	const queues = "/ops/queues/api/queues"
	if r := s.do("GET", queues, nil, admin); r.code != 200 {
		t.Fatalf("%s with Redis up: %d %s", queues, r.code, r.body)
	}
	page()

	own.Stop()
	for _, path := range []string{queues, "/ops/queues/api/queues/default:sync", "/ops/queues/api/redis_info"} {
		r := s.do("GET", path, nil, admin)
		if r.code != 503 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") ||
			r.json(t)["code"] != "queue_unavailable" || r.json(t)["request_id"] != r.header.Get("X-Request-ID") || r.header.Get("Retry-After") == "" {
			t.Errorf("%s with Redis down: %d %q %s, want a JSON 503 queue_unavailable with Retry-After", path, r.code, r.header.Get("Content-Type"), r.body)
		}
		if strings.Contains(string(r.body), strings.TrimPrefix(own.URL, "redis://")) {
			t.Errorf("%s names Redis's address: %s", path, r.body)
		}
	}
	page()
	// The dashboard's page itself gets the same error as text (see
	// TestDashboardRedisDownInBrowser).
	r := s.do("GET", queues, nil, map[string]string{"X-API-Key": "", "Authorization": "Bearer " + adminToken,
		"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty"})
	if want := "queue_unavailable: The job queue is unreachable right now; retry shortly. (request " + r.header.Get("X-Request-ID") + ")\n"; r.code != 503 ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || string(r.body) != want {
		t.Errorf("the dashboard page's call with Redis down: %d %q %q, want a text 503 %q", r.code, r.header.Get("Content-Type"), r.body, want)
	}

	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return s.do("GET", queues, nil, admin).code == 200 }, "%s never recovered", queues)
}

// While Redis is down the dashboard in a browser behaves as asynqmon's own
// does, but for the Redis error's text: the queues page shows its error
// banner, and a task's page renders the API's error. (Given a JSON error,
// the page drops the banner and the task page comes up blank.)
func TestDashboardRedisDownInBrowser(t *testing.T) {
	browser := chromium(t)
	own := ownRedis(t)
	s := startStack(t, stackOptions{redisURL: own.URL, noWorker: true, api: api.Config{AdminToken: adminToken}})
	own.Stop()
	ctx := browserTab(t, browser)
	authorize(t, ctx)
	for _, tc := range []struct{ path, want string }{
		{"/ops/queues", "Could not retrieve queues live data"},
		{"/ops/queues/queues/default:sync/tasks/abc", "queue_unavailable: The job queue is unreachable right now"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+tc.path)); err != nil {
			t.Fatal(err)
		}
		var text string
		deadline := time.Now().Add(30 * time.Second) // a stuck page, not a measurement
		for !strings.Contains(text, tc.want) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			var err error
			if text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(text, tc.want) || strings.Contains(text, strings.TrimPrefix(own.URL, "redis://")) {
			t.Errorf("%s with Redis down shows %q; want %q, and no Redis address", tc.path, text, tc.want)
		}
	}
}
