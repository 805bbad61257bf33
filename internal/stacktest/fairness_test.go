package stacktest

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
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
