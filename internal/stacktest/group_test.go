package stacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

const syncQueue = "default:sync"

// groupInputs are the callers of a group of 8 rows: six leads, one list of
// two, all different.
func groupInputs() []string {
	lead := func(i int) string {
		return fmt.Sprintf(`{"company_size": %d, "engagement_score": %d, "website_visits": %d, "demo_requested": %t, "industry": "Technology", "title": "VP of Sales", "decision_timeline": "1-3 months"}`,
			50+i*90, (10+i*13)%100, i*3, i%2 == 0)
	}
	in := make([]string, 0, 7)
	for i := range 6 {
		in = append(in, lead(i))
	}
	return append(in, "["+lead(7)+","+lead(8)+"]")
}

// sent is a caller's answer, read on its own goroutine.
type sent struct {
	code int
	id   string // X-Request-ID
	body []byte
	err  error
}

// post sends a sync predict of inputs under ctx, with Prefer: wait.
func (s *stack) post(ctx context.Context, inputs, wait string) <-chan sent {
	ch := make(chan sent, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, "POST", s.url+"/api/v1/models/21/predict",
			bytes.NewReader([]byte(`{"inputs": `+inputs+`}`)))
		if err != nil {
			ch <- sent{err: err}
			return
		}
		req.Header.Set("X-API-Key", s.key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait="+wait)
		resp, err := client.Do(req)
		if err != nil {
			ch <- sent{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- sent{code: resp.StatusCode, id: resp.Header.Get("X-Request-ID"), body: b, err: err}
	}()
	return ch
}

func (s *stack) pending() int {
	info, err := asynq.NewInspectorFromRedisClient(s.rdb).GetQueueInfo(syncQueue)
	if err != nil {
		return -1
	}
	return info.Pending
}

// holdLone holds the sync queue and sends a lone predict, which goes at
// once, alone, and waits there.
func (s *stack) holdLone(t *testing.T, wait string) <-chan sent {
	t.Helper()
	if err := asynq.NewInspectorFromRedisClient(s.rdb).PauseQueue(syncQueue); err != nil {
		t.Fatal(err)
	}
	lone := s.post(t.Context(), lead, wait)
	eventually(t, 10*time.Second, func() bool { return s.pending() == 1 }, "the lone predict was never enqueued")
	return lone
}

// send posts each of inputs under a context of its own.
func (s *stack) send(t *testing.T, inputs []string, wait string) (members []<-chan sent, cancels []context.CancelFunc) {
	for _, in := range inputs {
		ctx, cancel := context.WithCancel(t.Context())
		members, cancels = append(members, s.post(ctx, in, wait)), append(cancels, cancel)
	}
	return members, cancels
}

// gather is holdLone, then inputs, which gather behind the lone predict
// into one group of 8 rows, sent when full. It returns the lone caller's
// answer and the members', with the queue still held.
func (s *stack) gather(t *testing.T, inputs []string, wait string) (lone <-chan sent, members []<-chan sent, cancels []context.CancelFunc) {
	t.Helper()
	lone = s.holdLone(t, wait)
	members, cancels = s.send(t, inputs, wait)
	eventually(t, 10*time.Second, func() bool { return s.pending() == 2 }, "the group was never enqueued; pending %d", s.pending())
	return lone, members, cancels
}

func (s *stack) release(t *testing.T) {
	t.Helper()
	if err := asynq.NewInspectorFromRedisClient(s.rdb).UnpauseQueue(syncQueue); err != nil {
		t.Fatal(err)
	}
}

// alone is what one-at-a-time scoring of inputs answers (the stack is
// idle, so it goes alone), without what differs per call.
func (s *stack) alone(t *testing.T, inputs string) map[string]any {
	t.Helper()
	r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+inputs+`}`), nil)
	if r.code != 200 {
		t.Fatalf("alone: %d %s", r.code, r.body)
	}
	return comparable(t, r.body)
}

// comparable is a predict body without its request id and timestamp.
func comparable(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	delete(m, "timestamp")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "request_id")
	}
	return m
}

// checkOwnBody holds a grouped caller's answer to what scoring its inputs
// alone answers, row for row, under its own request id, also stored for
// polling.
func (s *stack) checkOwnBody(t *testing.T, got sent, inputs string, want map[string]any) {
	t.Helper()
	if got.err != nil || got.code != 200 {
		t.Fatalf("grouped caller: %d %v %s", got.code, got.err, got.body)
	}
	var md struct {
		Metadata struct {
			RequestID string `json:"request_id"`
		} `json:"metadata"`
	}
	if json.Unmarshal(got.body, &md) != nil || md.Metadata.RequestID != got.id || got.id == "" {
		t.Errorf("body's request_id %q, X-Request-ID %q", md.Metadata.RequestID, got.id)
	}
	if diff := cmp.Diff(want, comparable(t, got.body)); diff != "" {
		t.Errorf("inputs %s: grouped body differs from one-at-a-time scoring (-alone +grouped):\n%s", inputs, diff)
	}
	job := s.waitJob(t, got.id, "succeeded")
	stored, _ := json.Marshal(job["result"])
	if diff := cmp.Diff(comparable(t, got.body), comparable(t, stored)); diff != "" {
		t.Errorf("stored result of %s differs from the answer:\n%s", got.id, diff)
	}
}

// Callers gathered into one task each get the body scoring their inputs
// alone gives, row for row, with their own request id, stored for polling;
// the worker's metrics count the group's callers and rows.
func TestGroupedCallersEachGetTheirOwnBody(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{PredictGroupRows: 8}})
	inputs := groupInputs()
	lone, members, _ := s.gather(t, inputs, "20")
	s.release(t)
	if r := <-lone; r.code != 200 {
		t.Fatalf("lone caller: %d %v %s", r.code, r.err, r.body)
	}
	got := make([]sent, len(members))
	ids := map[string]bool{}
	for i, ch := range members {
		got[i] = <-ch
		ids[got[i].id] = true
	}
	if len(ids) != len(members) {
		t.Errorf("%d distinct request ids for %d callers", len(ids), len(members))
	}
	for i, in := range inputs {
		s.checkOwnBody(t, got[i], in, s.alone(t, in))
	}
	for _, base := range s.health {
		m := samples(scrape(t, base))
		for _, name := range []string{"hokusai_worker_predict_callers_per_task", "hokusai_worker_predict_rows_per_task"} {
			if big := m[name+"_count"] - m[series(name+"_bucket", "le", "4")]; big != 1 {
				t.Errorf("%s: %v tasks over 4, want 1 (the group)", name, big)
			}
		}
		if m["hokusai_worker_predict_rows_per_task_sum"] != float64(1+8+8) { // lone, group, then each alone
			t.Errorf("rows per task sum %v, want 17", m["hokusai_worker_predict_rows_per_task_sum"])
		}
	}
}

// A caller that leaves while its group waits takes nothing from the
// others: each still gets its own body.
func TestGroupCallerLeavesOthersAnswered(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{PredictGroupRows: 8}})
	inputs := groupInputs()
	lone, members, cancels := s.gather(t, inputs, "20")
	const leaver = 2
	cancels[leaver]()
	if r := <-members[leaver]; r.err == nil {
		t.Fatalf("the leaving caller got an answer: %d %s", r.code, r.body)
	}
	s.release(t)
	<-lone
	for i, ch := range members {
		if i != leaver {
			s.checkOwnBody(t, <-ch, inputs[i], s.alone(t, inputs[i]))
		}
	}
}

// A member whose input the worker refuses fails alone: the others in its
// task are scored and stored as if alone.
func TestGroupBadRowBesideGoodOnes(t *testing.T) {
	s := startStack(t, stackOptions{})
	inputs := []string{groupInputs()[0], `{"company_size": "huge"}`, groupInputs()[6]}
	g := jobs.PredictGroup{RetentionSeconds: 3600}
	for i, in := range inputs {
		id := fmt.Sprintf("member-%d", i)
		g.Members = append(g.Members, jobs.PredictPayload{RequestID: id, Tenant: "acme", ModelID: "21",
			Inputs: json.RawMessage(in), EnqueuedAt: time.Now().UnixMilli()})
		rec, _ := json.Marshal(jobs.JobRecord{Queue: syncQueue, Tenant: "acme", ModelID: "21", Task: "carrier", CreatedAt: time.Now().UnixMilli()})
		s.rdb.Set(t.Context(), jobs.JobKey(id), rec, time.Hour)
	}
	task, err := jobs.NewPredictGroupTask(g, "carrier", jobs.TaskOptions{Pool: "default", Lane: jobs.LaneSync, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(s.rdb).Enqueue(task); err != nil {
		t.Fatal(err)
	}
	bad := s.waitJob(t, "member-1", "failed")
	if e, _ := bad["error"].(map[string]any); e["code"] != "invalid_input" {
		t.Errorf("bad member: %v", bad)
	}
	for _, i := range []int{0, 2} {
		job := s.waitJob(t, fmt.Sprintf("member-%d", i), "succeeded")
		stored, _ := json.Marshal(job["result"])
		if diff := cmp.Diff(s.alone(t, inputs[i]), comparable(t, stored)); diff != "" {
			t.Errorf("member %d beside a bad one differs from one-at-a-time scoring:\n%s", i, diff)
		}
	}
}

// A worker killed while it held a group leaves the task active under a
// lease it no longer renews. Every caller is answered 504 with its own id,
// and once another worker recovers the task, each id completes with the
// body scoring it alone gives.
func TestGroupWorkerKilledMidTask(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{PredictGroupRows: 8}})
	inputs := groupInputs()
	lone, members, _ := s.gather(t, inputs, "1")
	first := <-members[0]
	var rec jobs.JobRecord
	if err := json.Unmarshal([]byte(s.rdb.Get(t.Context(), jobs.JobKey(first.id)).Val()), &rec); err != nil || rec.Task == "" {
		t.Fatalf("grouped caller %s (%d) has record %+v, %v", first.id, first.code, rec, err)
	}
	// What a killed worker leaves behind: asynq's dequeue writes, then no
	// lease renewal.
	ctx := t.Context()
	_, err := s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.LRem(ctx, queue.Key(syncQueue, "pending"), 1, rec.Task)
		pl.LPush(ctx, queue.Key(syncQueue, "active"), rec.Task)
		pl.HSet(ctx, queue.TaskKey(syncQueue, rec.Task), "state", "active")
		pl.HDel(ctx, queue.TaskKey(syncQueue, rec.Task), "pending_since")
		pl.ZAdd(ctx, queue.Key(syncQueue, "lease"), redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: rec.Task})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := append([]sent{first}, make([]sent, len(members)-1)...)
	for i := 1; i < len(members); i++ {
		got[i] = <-members[i]
	}
	<-lone
	s.release(t)
	// A worker that starts recovers expired leases at once.
	s.startWorker(srv.URL, worker.Config{TaskRetryDelay: 10 * time.Millisecond})
	for i, r := range got {
		switch r.code {
		case 200:
		case 504:
			if e := (reply{body: r.body}).json(t); e["status_url"] != "/api/v1/jobs/"+r.id {
				t.Errorf("504 without the caller's own status_url: %s", r.body)
			}
		default:
			t.Fatalf("caller %d: %d %v %s", i, r.code, r.err, r.body)
		}
		job := s.waitJob(t, r.id, "succeeded")
		stored, _ := json.Marshal(job["result"])
		if diff := cmp.Diff(s.alone(t, inputs[i]), comparable(t, stored)); diff != "" {
			t.Errorf("caller %d's recovered result differs from one-at-a-time scoring:\n%s", i, diff)
		}
	}
}

// Callers that all leave a group before it is sent do not hold their key:
// the next caller, once the queue moves, goes at once.
func TestGroupLeftByAllDoesNotStallItsKey(t *testing.T) {
	s := startStack(t, stackOptions{})
	lone := s.holdLone(t, "20")
	members, cancels := s.send(t, groupInputs()[:2], "20")
	time.Sleep(200 * time.Millisecond) // let both join the open group
	for i, cancel := range cancels {
		cancel()
		<-members[i]
	}
	s.release(t)
	if r := <-lone; r.code != 200 {
		t.Fatalf("lone caller: %d %v %s", r.code, r.err, r.body)
	}
	if r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), map[string]string{"Prefer": "wait=10"}); r.code != 200 {
		t.Fatalf("the next caller: %d %s", r.code, r.body)
	}
}
