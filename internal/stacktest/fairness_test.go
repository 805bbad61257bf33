package stacktest

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// fairRows is the size of the big batch of the fairness test and
// benchmark: HOKUSAI_FAIR_ROWS, default 2,000,000. make test runs the test
// in its pass without the race detector, under which 2,000,000 rows take
// over ten minutes.
func fairRows() int { return rowsFromEnv("HOKUSAI_FAIR_ROWS", 2_000_000) }

// smallBatch is the rows of the small batches the big one shares the
// workers with.
const smallBatch = 20_000

// fairStack is a stack with tenants' keys, as request headers.
type fairStack struct {
	*stack
	keys map[string]map[string]string
}

// startFairStack starts a stack with a key for each tenant, and tenant C
// of weight 3.
func startFairStack(tb testing.TB) fairStack {
	s := fairStack{stack: startStack(tb, stackOptions{}), keys: map[string]map[string]string{}}
	for _, tenant := range []string{"A", "B", "C"} {
		key, _, err := apikey.Create(tb.Context(), s.rdb, "tenant-"+tenant, "unlimited")
		if err != nil {
			tb.Fatal(err)
		}
		s.keys[tenant] = map[string]string{"X-API-Key": key}
	}
	if err := apikey.SetTenantLimits(tb.Context(), s.rdb, "tenant-C", apikey.Change{Weight: ptr("3")}); err != nil {
		tb.Fatal(err)
	}
	return s
}

// startBig submits tenant A's batch of rows in the background; its id
// comes on the channel once the upload is done.
func (s fairStack) startBig(rows int) <-chan string {
	file := leadsCSV(s.t, rows, nil)
	id := make(chan string, 1)
	go func() {
		r := s.submitBatch(file, "text/csv", "", s.keys["A"])
		if r.code != http.StatusAccepted {
			s.t.Errorf("A's batch: %d %s", r.code, r.body)
		}
		got, _ := r.json(s.t)["batch_id"].(string)
		id <- got
	}()
	return id
}

// run submits tenant's file and waits for it, returning how long it took
// and its status.
func (s fairStack) run(tenant string, file []byte) (time.Duration, batchStatus) {
	start := time.Now()
	id := s.acceptedBatch(s.submitBatch(file, "text/csv", "", s.keys[tenant]))
	st := s.waitBatchAs(id, 10*time.Minute, s.keys[tenant])
	return time.Since(start), st
}

// Tenants share the workers in proportion to their weights: while tenant
// A's big batch runs, tenant B's small one (weight 1), then tenant C's
// (weight 3), is served in turns with it, and A's batch still scores
// every row once. The share is read from the rows A scored while B's or
// C's batch ran: with equal weights about as many as B's, with weight 3
// about a third of C's. BenchmarkFairShare gives it in seconds.
func TestFairShareBetweenTenants(t *testing.T) {
	s := startFairStack(t)
	big := fairRows()
	submitted := s.startBig(big)
	time.Sleep(2 * time.Second) // A's upload is under way, its chunks queued
	aID := <-submitted
	// beside runs tenant's batch beside A's and returns how many of A's
	// rows were scored meanwhile.
	beside := func(tenant string, rows int) int {
		before := s.batchStatusAs(aID, s.keys["A"]).RowsDone
		_, st := s.run(tenant, leadsCSV(t, rows, nil))
		after := s.batchStatusAs(aID, s.keys["A"]).RowsDone
		if st.RowsDone != rows || st.RowsFailed != 0 {
			t.Fatalf("%s's batch: %+v", tenant, st)
		}
		if after >= big {
			t.Fatalf("A's batch of %d rows finished before %s's of %d: make HOKUSAI_FAIR_ROWS larger", big, tenant, rows)
		}
		t.Logf("while %s's %d rows ran, A's batch scored %d", tenant, rows, after-before)
		return after - before
	}
	if got := beside("B", smallBatch); got > 2*smallBatch {
		t.Errorf("A scored %d rows while B's %d ran: B's share is under a third", got, smallBatch)
	}
	if got := beside("C", 10*smallBatch); got > 10*smallBatch/2 {
		t.Errorf("A scored %d rows while C's %d (weight 3) ran: C's share is under two thirds", got, 10*smallBatch)
	}
	st := s.waitBatchAs(aID, 10*time.Minute, s.keys["A"])
	if st.RowsDone != big || st.RowsFailed != 0 || st.Status != "succeeded" {
		t.Fatalf("A's batch: %+v", st)
	}
	s.key = s.keys["A"]["X-API-Key"]
	checkCSVResults(t, s.results(aID, "csv"), big, nil)
}

// BenchmarkFairShare reports how much longer tenant B's 20,000-row batch
// takes while tenant A's big batch (HOKUSAI_FAIR_ROWS) runs than alone, in
// the same run; with two tenants sharing equally, about 2.
//
//	go test ./internal/stacktest/ -run '^$' -bench FairShare -benchtime 3x
func BenchmarkFairShare(b *testing.B) {
	s := startFairStack(b)
	small := leadsCSV(b, smallBatch, nil)
	var ratios []float64
	for b.Loop() {
		alone, _ := s.run("B", small)
		submitted := s.startBig(fairRows())
		time.Sleep(2 * time.Second)
		shared, _ := s.run("B", small)
		id := <-submitted
		if st := s.waitBatchAs(id, 10*time.Minute, s.keys["A"]); st.RowsDone != fairRows() {
			b.Fatalf("A's batch: %+v", st)
		}
		ratios = append(ratios, shared.Seconds()/alone.Seconds())
	}
	b.ReportMetric(median(ratios), "shared/alone")
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// Async jobs of tenants share the async lane as batches do: a tenant has at
// most a window of jobs queued (twice the workers' task slots, times its
// weight); the rest wait in its own line. With the lane paused, tenant A
// submits 40 jobs and then tenant B 5, against one worker of 2 slots
// (windows of 4): once the lane runs, B's jobs are served in turns with
// A's rather than after all of them. A waiting job reads "queued", and
// one canceled while waiting never runs.
func TestAsyncFairShare(t *testing.T) {
	s := fairStack{stack: startStack(t, stackOptions{noWorker: true}), keys: map[string]map[string]string{}}
	s.startWorker(srv.URL, worker.Config{Concurrency: 2})
	s.waitReady("21")
	for _, tenant := range []string{"A", "B"} {
		key, _, err := apikey.Create(t.Context(), s.rdb, "tenant-"+tenant, "unlimited")
		if err != nil {
			t.Fatal(err)
		}
		s.keys[tenant] = map[string]string{"X-API-Key": key}
	}
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	lane := jobs.Queue(jobs.DefaultPool, jobs.LaneAsync)
	if err := insp.PauseQueue(lane); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"inputs": {"company_size": 120, "engagement_score": 64, "demo_requested": true}}`)
	submit := func(tenant string, n int) []string {
		var ids []string
		for range n {
			r := s.do("POST", "/api/v1/models/21/jobs", body, s.keys[tenant])
			if r.code != http.StatusAccepted {
				t.Fatalf("%s's job: %d %s", tenant, r.code, r.body)
			}
			ids = append(ids, r.json(t)["request_id"].(string))
		}
		return ids
	}
	a, b := submit("A", 40), submit("B", 5)
	last := a[len(a)-1]
	if st := s.do("GET", "/api/v1/jobs/"+last, nil, s.keys["A"]).json(t)["status"]; st != "queued" {
		t.Fatalf("a waiting job reads %v, want queued", st)
	}
	if r := s.do("DELETE", "/api/v1/jobs/"+last, nil, s.keys["A"]); r.code != http.StatusOK || r.json(t)["status"] != "canceled" {
		t.Fatalf("cancel of a waiting job: %d %s", r.code, r.body)
	}
	// In the queue: A's window and B's, the rest in their tenants' lines.
	if info, err := insp.GetQueueInfo(lane); err != nil || info.Pending != 8 {
		t.Fatalf("async queue holds %v pending (%v), want 8: windows of 4 for A and B", info, err)
	}
	if err := insp.UnpauseQueue(lane); err != nil {
		t.Fatal(err)
	}
	done := map[string]time.Time{}
	eventually(t, time.Minute, func() bool {
		for tenant, ids := range map[string][]string{"A": a[:len(a)-1], "B": b} {
			for _, id := range ids {
				if _, ok := done[id]; ok {
					continue
				}
				j := s.do("GET", "/api/v1/jobs/"+id, nil, s.keys[tenant]).json(t)
				if j["status"] == "succeeded" {
					// The body's timestamp, when it was scored, to the ms
					// (completed_at has whole seconds).
					stamp, _ := j["result"].(map[string]any)["timestamp"].(string)
					at, err := time.Parse(time.RFC3339Nano, stamp)
					if err != nil {
						t.Fatalf("job %s: result timestamp %q: %v", id, stamp, err)
					}
					done[id] = at
				}
			}
		}
		return len(done) == len(a)-1+len(b)
	}, "jobs not all done: %d of %d", len(done), len(a)-1+len(b))
	bLast := time.Time{}
	for _, id := range b {
		if done[id].After(bLast) {
			bLast = done[id]
		}
	}
	before := 0
	for _, id := range a[:len(a)-1] {
		if done[id].Before(bLast) {
			before++
		}
	}
	// In turns, B's 5 are done after about 4 of A's (A's window ahead of
	// them) plus as many as B's own; in order, after all 39.
	if before > 20 {
		t.Fatalf("%d of A's 39 jobs finished before B's last of 5: B waited behind A's line", before)
	}
	if st := s.do("GET", "/api/v1/jobs/"+last, nil, s.keys["A"]).json(t)["status"]; st != "canceled" {
		t.Fatalf("the job canceled while waiting reads %v", st)
	}
	t.Logf("A's jobs done before B's last: %d of 39", before)
}
