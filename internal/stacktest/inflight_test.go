package stacktest

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// A tenant's sync predicts past its concurrency cap wait in the API behind
// its own, and are refused with 429 when the wait is full or runs out,
// never queued; another tenant's go straight through. With no worker
// consuming, the first ones stay in flight.
func TestTenantSyncConcurrency(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true,
		// Grouping off: each predict is its own task, queued at once.
		api: api.Config{SyncTimeout: 3 * time.Second, TenantSyncConcurrency: 2, TenantSyncQueue: 1, PredictGroupRows: 1}})
	s.publishWithoutWorker(srv.URL)
	ctx := t.Context()
	keyOf := func(tenant string) map[string]string {
		key, _, err := apikey.Create(ctx, s.rdb, tenant, "unlimited")
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"X-API-Key": key}
	}
	a, b := keyOf("acme"), keyOf("globex")
	queued := func() int64 {
		return s.rdb.LLen(ctx, queue.Key(jobs.Queue(jobs.DefaultPool, jobs.LaneSync), "pending")).Val()
	}
	predict := func(key map[string]string, prefer string) reply {
		h := map[string]string{"Prefer": prefer}
		for k, v := range key {
			h[k] = v
		}
		return s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), h)
	}
	// acme's first two take its slots and wait for a worker that never comes.
	var wg sync.WaitGroup
	first := make([]reply, 2)
	for i := range first {
		wg.Go(func() { first[i] = predict(a, "") })
	}
	eventually(t, 5*time.Second, func() bool { return queued() == 2 }, "acme's first two were not queued")

	// The third waits for a slot (the queue holds one), and its wait ends first.
	var third reply
	wg.Go(func() { third = predict(a, "wait=1") })
	eventually(t, 5*time.Second, func() bool { return samples(scrape(t, s.url))["hokusai_api_sync_slot_waiting"] == 1 },
		"acme's third is not waiting for a slot")
	// The fourth finds the queue full: refused at once.
	if r := predict(a, ""); r.code != http.StatusTooManyRequests || r.json(t)["code"] != "rate_limited" ||
		r.header.Get("Retry-After") != "1" || !strings.Contains(string(r.body), "in flight") {
		t.Fatalf("acme's fourth: %d %s (Retry-After %q)", r.code, r.body, r.header.Get("Retry-After"))
	}
	// globex is not held behind acme.
	var other reply
	wg.Go(func() { other = predict(b, "wait=1") })
	eventually(t, 5*time.Second, func() bool { return queued() == 3 }, "globex's predict was not queued beside acme's")
	wg.Wait()
	if third.code != http.StatusTooManyRequests || third.json(t)["code"] != "rate_limited" {
		t.Fatalf("acme's third, whose wait ran out: %d %s", third.code, third.body)
	}
	if other.code != http.StatusGatewayTimeout {
		t.Fatalf("globex's, queued with no worker: %d %s", other.code, other.body)
	}
	for i, r := range first {
		if r.code != http.StatusGatewayTimeout {
			t.Errorf("acme's predict %d: %d %s", i+1, r.code, r.body)
		}
	}
	if n := queued(); n != 3 {
		t.Errorf("%d predicts queued; want acme's two and globex's one", n)
	}
	// With its slots free again, acme's next is queued.
	if r := predict(a, "wait=0.2"); r.code != http.StatusGatewayTimeout || queued() != 4 {
		t.Fatalf("acme's predict after its slots freed: %d %s, %d queued", r.code, r.body, queued())
	}
}
