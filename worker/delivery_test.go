package worker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

func TestWebhookBackoff(t *testing.T) {
	var total time.Duration
	for n := 1; n < webhookMaxAttempts; n++ {
		total += webhookBackoff(n)
	}
	for n, want := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 7: 32 * time.Second,
		8: 64 * time.Second, 11: 64 * time.Second} {
		if got := webhookBackoff(n); got != want {
			t.Errorf("pause after attempt %d: %s, want %s", n, got, want)
		}
	}
	if want := 319500 * time.Millisecond; total != want {
		t.Errorf("attempt 12 comes %s after the first, want %s", total, want)
	}
}

// testWorker is a worker with defaults on rdb, for the delivery path alone.
func testWorker(rdb redis.UniversalClient, cfg Config) *Worker {
	cfg = cfg.WithDefaults()
	return &Worker{cfg: cfg, rdb: rdb, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		webhooks: newWebhookClient(true)}
}

// The due sets give every worker the earliest deliveries, at most a
// tenant's free share, and keep a delivery from other workers while it is
// leased: until the lease runs out (its worker died) or it is handed back
// (its worker stopped). Time is passed in, so nothing here waits.
func TestWebhookQueue(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	w := testWorker(rdb, Config{WebhookTenantConcurrency: 2})
	d := newDeliveries(w)
	schedule := func(tenant, id string) {
		t.Helper()
		rec := jobs.BatchRecord{CallbackURL: "http://example.com/hook", Tenant: tenant}
		if err := w.scheduleWebhook(ctx, id, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		schedule("a", id)
	}
	schedule("b", "b1")
	if err := w.scheduleWebhook(ctx, "c1", jobs.BatchRecord{Tenant: "c"}); err != nil {
		t.Fatal(err) // no callback: nothing to deliver
	}
	now := time.Now().Add(time.Millisecond)
	claim := func(at time.Time, busy map[string]int) []delivery {
		t.Helper()
		got, _, err := d.claim(ctx, at, 10, busy)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(x, y delivery) int { return strings.Compare(x.batch, y.batch) })
		return got
	}
	check := func(step string, got []delivery, want ...delivery) {
		t.Helper()
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(delivery{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step, diff)
		}
	}
	a1, a2, a3, b1 := delivery{"a", "a1"}, delivery{"a", "a2"}, delivery{"a", "a3"}, delivery{"b", "b1"}

	check("first claim: two of a's, b's", claim(now, nil), a1, a2, b1)
	check("a full here: none of a's", claim(now, map[string]int{"a": 2}))
	check("another worker: what is not leased", claim(now, nil), a3)
	schedule("b", "b1") // a chunk task run again: b1 stays leased
	check("all leased", claim(now, nil))
	_, next, _ := d.claim(ctx, now, 10, nil)
	if want := now.Add(d.lease).UnixMilli(); next.UnixMilli() != want {
		t.Errorf("next due %d, want the end of the leases, %d", next.UnixMilli(), want)
	}
	check("leases run out", claim(now.Add(d.lease), nil), a1, a2, b1)

	later := now.Add(d.lease)
	hand := func(c delivery, due string) {
		t.Helper()
		if err := setDue.Run(ctx, rdb, webhookKeys(w.cfg.Pool, c.tenant), c.tenant, c.batch, due, "XX").Err(); err != nil {
			t.Fatal(err)
		}
	}
	hand(b1, "1") // handed back by a stopping worker: due at once
	check("handed back", claim(later, map[string]int{"a": 2}), b1)
	for _, c := range []delivery{a1, a2, a3, b1} {
		hand(c, "") // done
	}
	if n, err := rdb.Exists(ctx, jobs.WebhookTenantsKey(w.cfg.Pool), jobs.WebhookDueKey(w.cfg.Pool, "a"),
		jobs.WebhookDueKey(w.cfg.Pool, "b")).Result(); err != nil || n != 0 {
		t.Errorf("%d keys left once every delivery is done (err %v)", n, err)
	}
}

// An attempt posts the signed summary, records itself in the batch's
// attempts and says when the next is due; once delivered, out of attempts
// or expired, there is none.
func TestAttemptWebhook(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	var hits, status atomic.Int64
	cancels := make(chan context.CancelFunc, 1) // the next post cancels its attempt
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case cancel := <-cancels:
			cancel()
			_, _ = io.Copy(io.Discard, r.Body) // then net/http sees the client go
			<-r.Context().Done()
		default:
			rw.WriteHeader(int(status.Load()))
		}
	}))
	defer hook.Close()
	w := testWorker(rdb, Config{})
	batch := func(id string, attempts int) {
		t.Helper()
		newBatchRecord(t, rdb, id, jobs.BatchFieldCallback, hook.URL, jobs.BatchFieldTenant, "acme",
			jobs.BatchFieldFinished, time.Now().UnixMilli())
		for n := range attempts {
			b, _ := json.Marshal(jobs.WebhookAttempt{Attempt: n + 1, Status: 500})
			rdb.RPush(ctx, jobs.BatchHooksKey(id), b)
		}
	}
	attempts := func(id string) []jobs.WebhookAttempt {
		t.Helper()
		var out []jobs.WebhookAttempt
		for _, s := range rdb.LRange(ctx, jobs.BatchHooksKey(id), 0, -1).Val() {
			var a jobs.WebhookAttempt
			_ = json.Unmarshal([]byte(s), &a)
			a.At = 0
			out = append(out, a)
		}
		return out
	}
	attempt := func(id string) time.Time {
		t.Helper()
		next, err := w.attemptWebhook(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return next
	}

	batch("x", 0)
	status.Store(500)
	before := time.Now()
	next := attempt("x")
	if next.Before(before.Add(webhookFirstBackoff)) || next.After(time.Now().Add(webhookFirstBackoff)) {
		t.Errorf("after a 500 the next attempt is due %s from now, want %s", time.Until(next), webhookFirstBackoff)
	}
	status.Store(200)
	if next := attempt("x"); !next.IsZero() {
		t.Errorf("delivered, yet another attempt is due at %s", next)
	}
	if next := attempt("x"); !next.IsZero() || hits.Load() != 2 {
		t.Errorf("an attempt after delivery: next %s, %d posts", next, hits.Load())
	}
	if diff := cmp.Diff([]jobs.WebhookAttempt{{Attempt: 1, Status: 500}, {Attempt: 2, Status: 200}}, attempts("x")); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	if rdb.HGet(ctx, jobs.BatchKey("x"), jobs.BatchFieldHookDone).Val() == "" {
		t.Error("delivery not stamped")
	}
	// A worker whose lease ran out records nothing over the attempt that
	// another worker recorded meanwhile.
	if n, err := recordAttempt.Run(ctx, rdb, []string{jobs.BatchKey("x"), jobs.BatchHooksKey("x")},
		1, `{"attempt":2}`, "", jobs.BatchFieldHookDone).Int(); err != nil || n != 0 || len(attempts("x")) != 2 {
		t.Errorf("a stale attempt 2: recorded %d (err %v), %d attempts", n, err, len(attempts("x")))
	}

	batch("y", webhookMaxAttempts-1)
	status.Store(503)
	if next := attempt("y"); !next.IsZero() || len(attempts("y")) != webhookMaxAttempts {
		t.Errorf("the last attempt failed: next %s, %d attempts recorded", next, len(attempts("y")))
	}
	if next := attempt("y"); !next.IsZero() || hits.Load() != 3 {
		t.Errorf("out of attempts: next %s, %d posts", next, hits.Load())
	}
	if next := attempt("gone"); !next.IsZero() || hits.Load() != 3 {
		t.Errorf("an expired batch: next %s, %d posts", next, hits.Load())
	}

	// An attempt cut short (the worker stopping) is not one.
	batch("z", 0)
	cut, cancel := context.WithCancel(ctx)
	cancels <- cancel
	if _, err := w.attemptWebhook(cut, "z"); err == nil || len(attempts("z")) != 0 || hits.Load() != 4 {
		t.Errorf("attempt cut short: err %v, attempts %v, %d posts", err, attempts("z"), hits.Load())
	}
}
