package stacktest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/leadgen"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

// smallChunks makes a few hundred rows span several chunk tasks.
var smallChunks = stackOptions{api: api.Config{Batch: api.BatchConfig{ChunkRows: 64}}}

func (s *stack) submitBatch(body []byte, ctype, query string, headers map[string]string) reply {
	s.t.Helper()
	h := map[string]string{"Content-Type": ctype}
	for k, v := range headers {
		h[k] = v
	}
	return s.do("POST", "/api/v1/models/21/batches"+query, body, h)
}

func (s *stack) acceptedBatch(r reply) string {
	s.t.Helper()
	if r.code != http.StatusAccepted {
		s.t.Fatalf("submit answered %d: %s; logs:\n%s", r.code, r.body, s.logs)
	}
	id, _ := r.json(s.t)["batch_id"].(string)
	return id
}

type batchStatus struct {
	Status     string   `json:"status"`
	RowsTotal  int      `json:"rows_total"`
	RowsDone   int      `json:"rows_done"`
	RowsFailed int      `json:"rows_failed"`
	RowsWarned int      `json:"rows_warned"`
	StartedAt  *string  `json:"started_at"`
	FinishedAt *string  `json:"finished_at"`
	ETA        *float64 `json:"eta_seconds"`
	Webhook    *struct {
		DeliveredAt *string               `json:"delivered_at"`
		Attempts    []jobs.WebhookAttempt `json:"attempts"`
	} `json:"webhook"`
}

// fakeReadyWorker keeps a heartbeat of a ready worker serving model 21 that
// consumes nothing, until the test ends.
func (s *stack) fakeReadyWorker() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	beat := func() {
		hb := jobs.Heartbeat{WorkerID: "fake", Pool: jobs.DefaultPool, State: jobs.StateReady,
			Models: []jobs.ModelStatus{{ID: "21", Loaded: true}}, SeenAt: time.Now()}
		b, _ := json.Marshal(hb)
		s.rdb.Set(ctx, jobs.HeartbeatKey("fake"), b, jobs.HeartbeatTTL)
		s.rdb.ZAdd(ctx, jobs.WorkersKey, redis.Z{Score: float64(time.Now().UnixMilli()), Member: "fake"})
	}
	beat()
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(jobs.HeartbeatInterval):
				beat()
			}
		}
	}()
	s.t.Cleanup(func() { cancel(); <-done })
	s.waitReady("21")
}

func (s *stack) batchStatus(id string) batchStatus {
	s.t.Helper()
	return s.batchStatusAs(id, nil)
}

// batchStatusAs reads batch id's status with headers (another tenant's key).
func (s *stack) batchStatusAs(id string, headers map[string]string) batchStatus {
	s.t.Helper()
	r := s.do("GET", "/api/v1/batches/"+id, nil, headers)
	if r.code != http.StatusOK {
		s.t.Fatalf("status answered %d: %s", r.code, r.body)
	}
	var b batchStatus
	if err := json.Unmarshal(r.body, &b); err != nil {
		s.t.Fatal(err)
	}
	return b
}

// waitBatch polls until the batch has finished and returns its status.
func (s *stack) waitBatch(id string, within time.Duration) batchStatus {
	s.t.Helper()
	return s.waitBatchAs(id, within, nil)
}

// waitBatchAs is waitBatch with headers (another tenant's key).
func (s *stack) waitBatchAs(id string, within time.Duration, headers map[string]string) batchStatus {
	s.t.Helper()
	var b batchStatus
	eventually(s.t, within, func() bool {
		b = s.batchStatusAs(id, headers)
		return b.FinishedAt != nil
	}, "batch %s did not finish: %+v; logs:\n%s", id, &b, s.logs)
	return b
}

// results downloads a finished batch's results and checks that the
// stream says it is whole: its trailers (and, in JSONL, its end marker)
// give the batch's rows_total and status.
func (s *stack) results(id, format string) []byte {
	s.t.Helper()
	d := s.download(client, s.url, id, "?format="+format)
	if d.code != http.StatusOK || d.err != nil {
		s.t.Fatalf("results answered %d, read error %v: %s", d.code, d.err, d.body)
	}
	b := s.batchStatus(id)
	checkEnd(s.t, d, b.RowsTotal, b.Status)
	return d.body
}

func leadsCSV(t testing.TB, n int, bad map[int]bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := leadgen.WriteCSV(&b, n, 1, bad); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkCSVResults reads results CSV and checks every row comes once, in
// order, with its id, scored or failed as expected.
func checkCSVResults(t testing.TB, body []byte, n int, bad map[int]bool) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("results are not CSV: %v", err)
	}
	want := []string{"row", "id", "lead_score", "conversion_probability", "recommendation", "confidence", "factors", "warnings",
		"error_code", "error_detail"}
	if diff := cmp.Diff(want, recs[0]); diff != "" {
		t.Fatalf("header (-want +got):\n%s", diff)
	}
	if len(recs) != n+1 {
		t.Fatalf("%d result rows, want %d", len(recs)-1, n)
	}
	for i, r := range recs[1:] {
		if r[0] != strconv.Itoa(i) || r[1] != "L"+strconv.Itoa(i) {
			t.Fatalf("result %d is row %s id %s: out of order", i, r[0], r[1])
		}
		if bad[i] != (r[8] != "") {
			t.Fatalf("row %d: error %q %q, want failed=%t", i, r[8], r[9], bad[i])
		}
		if !bad[i] {
			if score, err := strconv.Atoi(r[2]); err != nil || score < 0 || score > 100 || r[4] == "" {
				t.Fatalf("row %d: not a lead score: %v", i, r)
			}
		}
	}
	return recs
}

func TestBatchCSV(t *testing.T) {
	s := startStack(t, smallChunks)
	bad := map[int]bool{0: true, 70: true, 299: true}
	in := leadsCSV(t, 300, bad)
	id := s.acceptedBatch(s.submitBatch(in, "text/csv", "", nil))
	b := s.waitBatch(id, 30*time.Second)
	if b.Status != jobs.BatchPartiallyFailed || b.RowsTotal != 300 || b.RowsDone != 300 || b.RowsFailed != 3 ||
		b.StartedAt == nil || b.ETA == nil || *b.ETA != 0 {
		t.Fatalf("status %+v", b)
	}
	recs := checkCSVResults(t, s.results(id, "csv"), 300, bad)
	if !strings.Contains(recs[71][9], "company_size") || recs[71][8] != "invalid_input" {
		t.Errorf("row 70's error does not name its field: %v", recs[71])
	}

	// The batch's scores are the model's own, row by row.
	m, err := model.Load(demoModel(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(in), "\n")
	header, _ := batchfile.SplitCSV(lines[0], nil)
	dec, err := batchfile.NewCSVDecoder(m.Schema(), header, jobs.Mode{AsOf: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range lines[1:301] {
		row := make(jobs.Row, len(m.Schema().Fields))
		if _, rerr := dec.CSV(line, row); rerr != nil {
			continue
		}
		p, err := m.Predict([]jobs.Row{row})
		if err != nil {
			t.Fatal(err)
		}
		got := recs[i+1]
		if got[2] != strconv.Itoa(p[0].LeadScore) || got[4] != p[0].Recommendation ||
			got[3] != strconv.FormatFloat(p[0].ConversionProbability, 'g', -1, 32) {
			t.Fatalf("row %d scored %v in the batch, %+v by the model", i, got, p[0])
		}
	}

	// And the sync path's.
	cr := csv.NewReader(strings.NewReader(lines[0] + "\n" + lines[6]))
	rows, _ := cr.ReadAll()
	obj := map[string]any{}
	for i, name := range rows[0][1:] {
		obj[name] = rows[1][i+1]
	}
	for _, f := range []string{"company_size", "engagement_score", "website_visits", "email_opens", "content_downloads"} {
		obj[f], _ = strconv.ParseFloat(obj[f].(string), 64)
	}
	req, _ := json.Marshal(map[string]any{"inputs": obj})
	pred := s.do("POST", "/api/v1/models/21/predict", req, nil).json(t)["predictions"].(map[string]any)
	if got := recs[6][2]; got != fmt.Sprint(pred["lead_score"]) || recs[6][4] != pred["recommendation"] {
		t.Errorf("row 5 scored %s %s in the batch, %v %v by predict", got, recs[6][4], pred["lead_score"], pred["recommendation"])
	}
}

func TestBatchJSONLAndJSON(t *testing.T) {
	s := startStack(t, smallChunks)
	var jsonl bytes.Buffer
	var inputs []json.RawMessage
	for i := range 150 {
		line := fmt.Sprintf(`{"id": %d, "company_size": %d, "engagement_score": 50, "industry": "Finance", "decision_timeline": "Immediate", "title": "CTO"}`, i, 10+i)
		if i == 100 {
			line = `{"id": "x", "company_size": "lots"}`
		}
		if i == 101 {
			line = `{"id": "y", "company_size": 5`
		}
		jsonl.WriteString(line + "\r\n\n")
		if i != 101 {
			inputs = append(inputs, json.RawMessage(line))
		}
	}
	body, _ := json.Marshal(map[string]any{"inputs": inputs})
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		rows        int
		bad         map[int]string
	}{
		{"jsonl", "application/x-ndjson", jsonl.Bytes(), 150, map[int]string{100: "invalid_input", 101: "malformed_row"}},
		{"json", "application/json", body, 149, map[int]string{100: "invalid_input"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.submitBatch(tc.body, tc.ctype, "", nil)
			id := s.acceptedBatch(r)
			if rows := r.json(t)["rows"]; rows != float64(tc.rows) {
				t.Fatalf("rows %v, want %d", rows, tc.rows)
			}
			b := s.waitBatch(id, 30*time.Second)
			if b.RowsDone != tc.rows || b.RowsFailed != len(tc.bad) {
				t.Fatalf("status %+v", b)
			}
			out := s.results(id, "jsonl") // its end marker checked there
			dec := json.NewDecoder(bytes.NewReader(out))
			for i := range tc.rows {
				var row struct {
					Row       int             `json:"row"`
					ID        string          `json:"id"`
					LeadScore *int            `json:"lead_score"`
					Factors   []string        `json:"factors"`
					Error     *jobs.Error     `json:"error"`
					Raw       json.RawMessage `json:"-"`
				}
				if err := dec.Decode(&row); err != nil {
					t.Fatal(err)
				}
				if row.Row != i {
					t.Fatalf("line %d is row %d", i, row.Row)
				}
				if code, isBad := tc.bad[i]; isBad {
					if row.Error == nil || row.Error.Code != code {
						t.Fatalf("row %d: %+v, want error %s", i, row, code)
					}
					continue
				}
				if row.Error != nil || row.LeadScore == nil || row.ID != strconv.Itoa(i) && i < 100 || row.Factors == nil {
					t.Fatalf("row %d: %+v", i, row)
				}
			}
			csvOut := s.results(id, "csv")
			if n := bytes.Count(csvOut, []byte("\n")); n != tc.rows+1 {
				t.Errorf("CSV results have %d lines, want %d", n, tc.rows+1)
			}
		})
	}
}

func TestBatchIdempotencyKey(t *testing.T) {
	s := startStack(t, smallChunks)
	in := leadsCSV(t, 100, nil)
	key := map[string]string{"Idempotency-Key": "import-2026-11-23"}
	first := s.acceptedBatch(s.submitBatch(in, "text/csv", "", key))
	again := s.submitBatch(in, "text/csv", "", key)
	if id := s.acceptedBatch(again); id != first {
		t.Fatalf("resubmission made batch %s, want %s", id, first)
	}
	if r := s.submitBatch(leadsCSV(t, 99, nil), "text/csv", "", key); r.code != http.StatusConflict {
		t.Fatalf("another body under the same key answered %d: %s", r.code, r.body)
	}
	if id := s.acceptedBatch(s.submitBatch(in, "text/csv", "", nil)); id == first {
		t.Fatal("a submission without the key reused the batch")
	}
	s.waitBatch(first, 30*time.Second)
	checkCSVResults(t, s.results(first, "csv"), 100, nil)
}

func TestBatchLimitsAndErrors(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{Batch: api.BatchConfig{ChunkRows: 64, MaxRows: 50, MaxBytes: 3000}}})
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		query       string
		code        int
		detail      string
	}{
		{"rows", "text/csv", []byte("company_size\n" + strings.Repeat("1\n", 51)), "", http.StatusRequestEntityTooLarge, "the 50-row limit"},
		{"bytes", "text/csv", leadsCSV(t, 45, nil), "", http.StatusRequestEntityTooLarge, "the 3000-byte limit"},
		{"media type", "text/plain", []byte("a"), "", http.StatusUnsupportedMediaType, "text/csv"},
		{"strict header", "text/csv", []byte("company_size,colour\n1,red\n"), "?strict=true", http.StatusUnprocessableEntity, `"colour"`},
		{"repeated column", "text/csv", []byte("company_size,company_size\n1,1\n"), "", http.StatusUnprocessableEntity, "twice"},
		{"empty", "text/csv", []byte(leadgen.Header + "\n"), "", http.StatusUnprocessableEntity, "no rows"},
		{"bad callback", "application/x-ndjson", []byte("{}\n"), "?callback_url=ftp://example.com/x", http.StatusUnprocessableEntity, "callback_url"},
		{"bad as_of", "application/x-ndjson", []byte("{}\n"), "?as_of=yesterday", http.StatusUnprocessableEntity, "as_of"},
		{"bad options", "application/json", []byte(`{"options": {"strict": "yes"}, "inputs": [{}]}`), "", http.StatusUnprocessableEntity, "options"},
		{"json", "application/json", []byte(`{"inputs": 3}`), "", http.StatusUnprocessableEntity, "list of objects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.submitBatch(tc.body, tc.ctype, tc.query, nil)
			if r.code != tc.code || !strings.Contains(r.json(t)["detail"].(string), tc.detail) {
				t.Fatalf("answered %d %s, want %d naming %q", r.code, r.body, tc.code, tc.detail)
			}
		})
	}
	if r := s.do("GET", "/api/v1/batches/nope", nil, nil); r.code != http.StatusNotFound || r.json(t)["code"] != "batch_not_found" {
		t.Errorf("unknown batch answered %d %s", r.code, r.body)
	}
	if r := s.do("POST", "/api/v1/models/99/batches", []byte("a\n1\n"), map[string]string{"Content-Type": "text/csv"}); r.code != http.StatusNotFound {
		t.Errorf("unknown model answered %d %s", r.code, r.body)
	}
}

func TestBatchTenantIsolation(t *testing.T) {
	s := startStack(t, smallChunks)
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 10, nil), "text/csv", "", nil))
	s.waitBatch(id, 30*time.Second)
	other, _, err := apikey.Create(t.Context(), s.rdb, "globex", "")
	if err != nil {
		t.Fatal(err)
	}
	as := map[string]string{"X-API-Key": other}
	for _, req := range []struct{ method, path string }{
		{"GET", "/api/v1/batches/" + id}, {"GET", "/api/v1/batches/" + id + "/results"}, {"DELETE", "/api/v1/batches/" + id},
	} {
		if r := s.do(req.method, req.path, nil, as); r.code != http.StatusNotFound || r.json(t)["code"] != "batch_not_found" {
			t.Errorf("%s %s as another tenant answered %d %s", req.method, req.path, r.code, r.body)
		}
	}
	if b := s.batchStatus(id); b.Status != jobs.BatchSucceeded {
		t.Errorf("the owner sees %+v", b)
	}
}

func TestBatchCancel(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true, api: smallChunks.api})
	_, stop := s.startWorker(srv.URL, worker.Config{})
	s.waitReady("21") // publishes the model's schema
	stop()
	// The API admits batches while a worker of the pool is ready; keep one
	// "ready" in heartbeats without consuming, so the batch stays queued.
	s.fakeReadyWorker()
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 500, nil), "text/csv", "", nil))
	if b := s.batchStatus(id); b.Status != jobs.BatchQueued || b.RowsTotal != 500 {
		t.Fatalf("before cancel: %+v", b)
	}
	if r := s.do("GET", "/api/v1/batches/"+id+"/results", nil, nil); r.code != http.StatusConflict {
		t.Fatalf("results of a queued batch answered %d", r.code)
	}
	r := s.do("DELETE", "/api/v1/batches/"+id, nil, nil)
	if r.code != http.StatusOK || r.json(t)["status"] != jobs.BatchCanceled {
		t.Fatalf("cancel answered %d %s", r.code, r.body)
	}
	if n, _ := s.rdb.Keys(t.Context(), jobs.BatchKey(id)+":in:*").Result(); len(n) != 0 {
		t.Errorf("inputs left after cancel: %v", n)
	}
	s.startWorker(srv.URL, worker.Config{})
	eventually(t, 10*time.Second, func() bool {
		n, _ := s.rdb.LLen(t.Context(), queue.Key(jobs.Queue(jobs.DefaultPool, jobs.LaneBatch), "pending")).Result()
		return n == 0
	}, "the canceled chunks were never drained")
	if b := s.batchStatus(id); b.Status != jobs.BatchCanceled || b.RowsDone != 0 {
		t.Fatalf("after cancel: %+v", b)
	}
	if r := s.do("DELETE", "/api/v1/batches/"+id, nil, nil); r.code != http.StatusOK {
		t.Errorf("a second cancel answered %d", r.code)
	}
}

// publishWithoutWorker has a worker on the Redis at url publish model 21
// and stop, and keeps a ready heartbeat in its place: batches are accepted,
// and nothing takes them until the test starts a worker.
func (s *stack) publishWithoutWorker(url string) {
	s.t.Helper()
	_, stop := s.startWorker(url, worker.Config{})
	s.waitReady("21")
	stop()
	s.fakeReadyWorker()
}

// queuedBatch submits a 100-row CSV batch to a stack whose only worker has
// published model 21 and stopped, so the batch waits in its queue until the
// test starts a worker.
func queuedBatch(t *testing.T) (*stack, string) {
	s := startStack(t, stackOptions{noWorker: true, api: smallChunks.api})
	return s, s.queueBatch(srv.URL, 100)
}

// queueBatch submits a CSV batch of rows leads to a stack with no worker
// running on the Redis at url (see publishWithoutWorker), so the batch
// waits until the test starts one.
func (s *stack) queueBatch(url string, rows int) string {
	s.t.Helper()
	s.publishWithoutWorker(url)
	return s.acceptedBatch(s.submitBatch(leadsCSV(s.t, rows, nil), "text/csv", "", nil))
}

// A chunk a worker cannot decode at all (here: a strict batch whose header
// the model no longer has) fails its rows rather than the task, so the
// batch still finishes.
func TestBatchUnusableChunk(t *testing.T) {
	s, id := queuedBatch(t)
	if err := s.rdb.HSet(t.Context(), jobs.BatchKey(id), jobs.BatchFieldHeader, `["id","colour"]`, jobs.BatchFieldStrict, "1").Err(); err != nil {
		t.Fatal(err)
	}
	s.startWorker(srv.URL, worker.Config{})
	b := s.waitBatch(id, 30*time.Second)
	if b.Status != jobs.BatchFailed || b.RowsFailed != 100 {
		t.Fatalf("status %+v", b)
	}
	recs, err := csv.NewReader(bytes.NewReader(s.results(id, "csv"))).ReadAll()
	if err != nil || len(recs) != 101 || recs[100][0] != "99" || recs[100][len(recs[100])-2] != "batch_unusable" ||
		!strings.Contains(recs[100][len(recs[100])-1], `"colour"`) {
		t.Fatalf("results %v (err %v)", recs[len(recs)-1], err)
	}
}

// A chunk that fails every attempt (here: the registry moved its model to
// another pool, so the only worker of its queue never has it) fails its
// rows as chunk_failed instead of leaving the batch running for ever.
func TestBatchChunkFailingEveryAttempt(t *testing.T) {
	s, id := queuedBatch(t)
	moved := []registry.Spec{
		{ID: "21", Source: "file://" + demoModel(t), Pool: "elsewhere"},
		{ID: "22", Source: "file://" + demoModel(t)},
	}
	for i := range moved {
		moved[i] = moved[i].WithDefaults()
	}
	if err := registry.Apply(t.Context(), s.rdb, moved); err != nil {
		t.Fatal(err)
	}
	// asynq times retries in whole seconds: ten retries take about ten.
	s.startWorker(srv.URL, worker.Config{TaskRetryDelay: time.Millisecond})
	b := s.waitBatch(id, 30*time.Second)
	if b.Status != jobs.BatchFailed || b.RowsFailed != 100 || b.RowsDone != 100 {
		t.Fatalf("status %+v", b)
	}
	recs, err := csv.NewReader(bytes.NewReader(s.results(id, "csv"))).ReadAll()
	if err != nil || len(recs) != 101 {
		t.Fatalf("%d result rows (err %v)", len(recs), err)
	}
	for i, r := range recs[1:] {
		if r[0] != strconv.Itoa(i) || r[1] != "L"+strconv.Itoa(i) || r[len(r)-2] != "chunk_failed" {
			t.Fatalf("row %v, want row %d, id L%d and the chunk_failed error", r, i, i)
		}
	}
	if !strings.Contains(s.logs.String(), "chunk failed on its last attempt") {
		t.Error("the worker did not log the chunk's failure")
	}
}

func TestBatchWebhook(t *testing.T) {
	s := startStack(t, smallChunks)
	secret, err := tenant.WebhookSecret(t.Context(), s.rdb, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []int
	var verified []bool
	var summary map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		verified = append(verified, tenant.Verify(secret, body, r.Header.Get(tenant.SignatureHeader)))
		if len(calls) == 0 {
			calls = append(calls, 500)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		calls = append(calls, 200)
		_ = json.Unmarshal(body, &summary)
	}))
	defer hook.Close()
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 200, map[int]bool{5: true}), "text/csv", "?callback_url="+hook.URL+"/hooks/batch", nil))
	var b batchStatus
	eventually(t, 30*time.Second, func() bool {
		b = s.batchStatus(id)
		return b.Webhook != nil && b.Webhook.DeliveredAt != nil
	}, "webhook never delivered: %+v", &b)
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{500, 200}, calls); diff != "" {
		t.Errorf("receiver answers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true, true}, verified); diff != "" {
		t.Errorf("signatures verified (-want +got):\n%s", diff)
	}
	if summary["batch_id"] != id || summary["status"] != jobs.BatchPartiallyFailed || summary["rows_failed"] != 1.0 || summary["rows_total"] != 200.0 {
		t.Errorf("summary %v", summary)
	}
	if len(b.Webhook.Attempts) != 2 || b.Webhook.Attempts[0].Status != 500 || b.Webhook.Attempts[1].Status != 200 || b.Webhook.Attempts[1].Attempt != 2 {
		t.Errorf("attempts %+v", b.Webhook.Attempts)
	}
}

// Canceling a batch that has a callback sends one signed batch.canceled
// webhook, from a worker, however often the cancel is repeated.
func TestBatchCancelWebhook(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true, api: smallChunks.api})
	_, stop := s.startWorker(srv.URL, worker.Config{})
	s.waitReady("21")
	stop()
	s.fakeReadyWorker() // accepted, but nothing runs until a worker starts
	secret, err := tenant.WebhookSecret(t.Context(), s.rdb, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var summary map[string]any
		if tenant.Verify(secret, body, r.Header.Get(tenant.SignatureHeader)) && json.Unmarshal(body, &summary) == nil {
			got <- summary
		} else {
			got <- nil
		}
	}))
	defer hook.Close()
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 200, nil), "text/csv", "?callback_url="+hook.URL, nil))
	for range 2 {
		if r := s.do("DELETE", "/api/v1/batches/"+id, nil, nil); r.code != http.StatusOK {
			t.Fatalf("cancel answered %d", r.code)
		}
	}
	s.startWorker(srv.URL, worker.Config{})
	select {
	case summary := <-got:
		if summary == nil || summary["event"] != "batch.canceled" || summary["status"] != jobs.BatchCanceled || summary["batch_id"] != id {
			t.Fatalf("webhook %v, want a signed batch.canceled summary", summary)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook after the cancel; logs:\n%s", s.logs)
	}
	eventually(t, 10*time.Second, func() bool {
		b := s.batchStatus(id)
		return b.Webhook != nil && b.Webhook.DeliveredAt != nil && len(b.Webhook.Attempts) == 1
	}, "delivery not recorded: %+v", s.batchStatus(id))
	select {
	case extra := <-got:
		t.Fatalf("a second webhook: %v", extra)
	case <-time.After(time.Second):
	}
}

// A worker SIGKILLed mid-batch loses nothing and duplicates nothing: the
// other worker hands the killed one's chunks back once its heartbeat has
// been gone HOKUSAI_RECLAIM_AFTER, so the batch's window does not wait on
// them, and every row is in the results exactly once.
func TestBatchWorkerKilled(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true, api: api.Config{Batch: api.BatchConfig{ChunkRows: 50}}})
	victim := s.startWorkerProcess(buildWorker(t), srv.URL)
	s.startWorker(srv.URL, worker.Config{})
	s.waitWorkers(2)
	const rows = 1500
	// explain=true (TreeSHAP, about 1 ms a row) keeps the batch running for
	// seconds, long enough to kill a worker in the middle of it.
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, rows, nil), "text/csv", "?explain=true", nil))
	var b batchStatus
	eventually(t, 60*time.Second, func() bool {
		b = s.batchStatus(id)
		return b.RowsDone >= 100
	}, "nothing was scored: %+v\n%s", &b, s.logs)
	held := s.killHolding(victim, "default:batch")
	killed := time.Now()
	if b = s.batchStatus(id); b.FinishedAt != nil {
		t.Fatalf("the batch finished before the kill; make it longer: %+v", b)
	}
	b = s.waitBatch(id, 120*time.Second) // a liveness bound; the figure is logged
	t.Logf("the batch finished %.1f s after its worker was killed holding %d chunks", time.Since(killed).Seconds(), len(held))
	if b.Status != jobs.BatchSucceeded || b.RowsDone != rows || b.RowsFailed != 0 {
		t.Fatalf("after the kill: %+v", b)
	}
	recs := checkCSVResults(t, s.results(id, "csv"), rows, nil)
	if recs[1][6] == "" {
		t.Errorf("explain=true gave no factors: %v", recs[1])
	}
}

// Workers split by lane, as docker-compose runs them: the API admits work
// only on a lane some ready worker consumes, says which lane has nobody,
// and flags backlog on a lane no ready worker takes.
func TestLanesSplitAcrossWorkers(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true, api: smallChunks.api})
	batchOnly, _ := s.startWorker(srv.URL, worker.Config{Lanes: []jobs.Lane{jobs.LaneBatch}})
	var r reply
	eventually(t, 20*time.Second, func() bool {
		r = s.submitBatch(leadsCSV(t, 100, nil), "text/csv", "", nil)
		return r.code == http.StatusAccepted
	}, "a batch-only worker never got batches admitted: %+v", &r)
	if b := s.waitBatch(s.acceptedBatch(r), 60*time.Second); b.Status != jobs.BatchSucceeded || b.RowsDone != 100 {
		t.Fatalf("batch on the batch-only worker: %+v", b)
	}
	noWorkerOn := func(r reply, lane jobs.Lane) {
		t.Helper()
		m := r.json(t)
		if detail, _ := m["detail"].(string); r.code != http.StatusServiceUnavailable || m["code"] != "no_ready_worker" ||
			!strings.Contains(detail, "on the "+string(lane)+" lane") {
			t.Errorf("%s work with no worker on its lane: %d %s", lane, r.code, r.body)
		}
	}
	body := []byte(`{"inputs": ` + lead + `}`)
	noWorkerOn(s.do("POST", "/api/v1/models/21/predict", body, nil), jobs.LaneSync)
	noWorkerOn(s.do("POST", "/api/v1/models/21/jobs", body, nil), jobs.LaneAsync)
	if h := s.do("GET", "/api/v1/models/21/health", nil, nil).json(t); h["inference_ready"] != false || h["ready_workers"] != 0.0 {
		t.Errorf("health counts the batch-only worker as serving predicts: %v", h)
	}
	stranded := series("hokusai_backlog_without_ready_worker", "pool", "default")
	s.enqueueDirect(jobs.LaneAsync, lead, time.Minute)
	eventually(t, 10*time.Second, func() bool { return samples(scrape(t, s.url))[stranded] == 1 },
		"an async job with only a batch-only worker was never flagged:\n%s", scrape(t, s.url))

	s.startWorker(srv.URL, worker.Config{Lanes: []jobs.Lane{jobs.LaneSync, jobs.LaneAsync}})
	s.waitReady("21")
	if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != http.StatusOK {
		t.Errorf("sync predict beside a sync worker: %d %s", r.code, r.body)
	}
	eventually(t, 10*time.Second, func() bool { return samples(scrape(t, s.url))[stranded] == 0 },
		"the async job was taken, yet the backlog stays flagged:\n%s", scrape(t, s.url))
	s.stopWorker(batchOnly)
	eventually(t, 20*time.Second, func() bool {
		r = s.submitBatch(leadsCSV(t, 10, nil), "text/csv", "", nil)
		return r.code != http.StatusAccepted
	}, "batches still admitted with no batch worker: %+v", &r)
	noWorkerOn(r, jobs.LaneBatch)
}
