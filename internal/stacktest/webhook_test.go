package stacktest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// heldHook is a webhook receiver that holds every request until the test
// lets go, then answers 503; once let go, it answers 200 at once.
type heldHook struct {
	*httptest.Server
	letGo func()
	gone  chan struct{} // closed by letGo

	mu sync.Mutex
	// held are requests waiting now, answered those answered, abandoned
	// those whose sender went away while held; unsigned counts requests
	// whose signature did not verify under the tenant's secret.
	held, answered, abandoned, unsigned int
}

func newHeldHook(t *testing.T, secret string) *heldHook {
	h := &heldHook{gone: make(chan struct{})}
	h.letGo = sync.OnceFunc(func() { close(h.gone) })
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // to its end, so net/http notices the sender leave
		h.mu.Lock()
		if !tenant.Verify(secret, body, r.Header.Get(tenant.SignatureHeader)) {
			h.unsigned++
		}
		h.mu.Unlock()
		select {
		case <-h.gone:
			h.mu.Lock()
			h.answered++
			h.mu.Unlock()
			return // 200
		default:
		}
		h.mu.Lock()
		h.held++
		h.mu.Unlock()
		select {
		case <-h.gone:
			h.mu.Lock()
			h.held--
			h.answered++
			h.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-r.Context().Done():
			h.mu.Lock()
			h.held--
			h.abandoned++
			h.mu.Unlock()
		}
	}))
	t.Cleanup(func() { h.letGo(); h.Close() })
	return h
}

// counts are the requests held now, answered, and abandoned by their
// sender while held.
func (h *heldHook) counts() [3]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return [3]int{h.held, h.answered, h.abandoned}
}

// submitHooked submits a one-row batch whose webhook goes to url, with
// headers (another tenant's key, say), and returns its id.
func (s *stack) submitHooked(url string, headers map[string]string) string {
	s.t.Helper()
	return s.acceptedBatch(s.submitBatch(leadsCSV(s.t, 1, nil), "text/csv", "?callback_url="+url, headers))
}

// heldBatches starts a stack whose one worker has cfg, and submits n
// one-row batches of the stack's tenant whose webhooks go to a receiver
// that holds them.
func heldBatches(t *testing.T, cfg worker.Config, n int) (*stack, *heldHook, []string) {
	s := startStack(t, stackOptions{noWorker: true})
	s.startWorker(srv.URL, cfg)
	s.waitReady("21")
	hook := newHeldHook(t, "")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.submitHooked(hook.URL, nil)
	}
	return s, hook, ids
}

// waitDelivered polls batch id (the stack's tenant's) until its webhook is
// delivered, and returns its attempts without their times.
func (s *stack) waitDelivered(id string) []jobs.WebhookAttempt {
	s.t.Helper()
	var b batchStatus
	eventually(s.t, 30*time.Second, func() bool {
		b = s.batchStatus(id)
		return b.Webhook != nil && b.Webhook.DeliveredAt != nil
	}, "webhook of batch %s never delivered: %+v; logs:\n%s", id, &b, s.logs)
	for i := range b.Webhook.Attempts {
		b.Webhook.Attempts[i].At = 0
	}
	return b.Webhook.Attempts
}

// Webhooks wait beside the worker's task slots, never in one: with two
// slots and four deliveries hanging on their receiver, sync predicts are
// answered and no task is active; once the receiver answers, every
// attempt shows in the batch status.
func TestWebhooksLeaveTaskSlotsFree(t *testing.T) {
	// A minute per attempt: the receiver ends them, not the timeout.
	s, hook, ids := heldBatches(t, worker.Config{Concurrency: 2, WebhookTenantConcurrency: 4, WebhookTimeout: time.Minute}, 4)
	eventually(t, 30*time.Second, func() bool { return hook.counts()[0] == len(ids) },
		"%d of %d webhooks reached the receiver (held, answered, abandoned); logs:\n%s", hook.counts(), len(ids), s.logs)
	for range 3 {
		if r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), nil); r.code != http.StatusOK {
			t.Fatalf("sync predict beside hanging webhooks: %d %s", r.code, r.body)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	var q *asynq.QueueInfo
	eventually(t, 10*time.Second, func() bool {
		var err error
		q, err = insp.GetQueueInfo(jobs.Queue(jobs.DefaultPool, jobs.LaneBatch))
		return err == nil && q.Active == 0
	}, "batch tasks still active while their webhooks hang: %+v", q)
	if c := hook.counts(); c != [3]int{len(ids), 0, 0} {
		t.Fatalf("the receiver's requests (held, answered, abandoned) were %v before it let go, want all held", c)
	}
	hook.letGo()
	want := []jobs.WebhookAttempt{{Attempt: 1, Status: http.StatusServiceUnavailable}, {Attempt: 2, Status: http.StatusOK}}
	for _, id := range ids {
		if diff := cmp.Diff(want, s.waitDelivered(id)); diff != "" {
			t.Errorf("batch %s attempts (-want +got):\n%s", id, diff)
		}
	}
}

// A delivery whose worker stops in the middle of an attempt is handed
// back, not recorded, and a worker started afterwards (batch-only, where
// the first served every lane) delivers it, signed, as the first attempt.
func TestWebhookOutlivesItsWorker(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true})
	secret, err := tenant.WebhookSecret(t.Context(), s.rdb, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// The attempt's timeout and its lease outlast the test: only the
	// hand-back lets the second worker take it.
	_, stop := s.startWorker(srv.URL, worker.Config{WebhookTimeout: time.Minute})
	s.waitReady("21")
	hook := newHeldHook(t, secret)
	id := s.submitHooked(hook.URL, nil)
	eventually(t, 30*time.Second, func() bool { return hook.counts()[0] == 1 },
		"the webhook never reached the receiver; logs:\n%s", s.logs)
	stop()
	eventually(t, 10*time.Second, func() bool { return hook.counts() == [3]int{0, 0, 1} },
		"the stopped worker's attempt did not end: %v (held, answered, abandoned)", hook.counts())
	if b := s.batchStatus(id); b.Webhook == nil || len(b.Webhook.Attempts) != 0 {
		t.Fatalf("the attempt cut short shows in the status: %+v", b.Webhook)
	}
	hook.letGo()
	s.startWorker(srv.URL, worker.Config{Lanes: []jobs.Lane{jobs.LaneBatch}, WebhookTimeout: time.Minute})
	if diff := cmp.Diff([]jobs.WebhookAttempt{{Attempt: 1, Status: http.StatusOK}}, s.waitDelivered(id)); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.answered != 1 || hook.unsigned != 0 {
		t.Errorf("receiver answered %d requests, %d unsigned; want one, signed", hook.answered, hook.unsigned)
	}
}

// One tenant's hanging endpoint takes no more than its share of a worker's
// delivery slots: another tenant's webhook goes out while every attempt of
// the first is still held.
func TestWebhookTenantShare(t *testing.T) {
	s, stuck, ids := heldBatches(t, worker.Config{WebhookConcurrency: 3, WebhookTenantConcurrency: 2, WebhookTimeout: time.Minute}, 3)
	eventually(t, 30*time.Second, func() bool { return stuck.counts()[0] == 2 },
		"acme's webhooks never filled its share: %v (held, answered, abandoned); logs:\n%s", stuck.counts(), s.logs)
	other, _, err := apikey.Create(t.Context(), s.rdb, "globex", "")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan [3]int, 1) // acme's requests when globex's webhook arrives
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case seen <- stuck.counts():
		default:
		}
	}))
	defer hook.Close()
	s.submitHooked(hook.URL, map[string]string{"X-API-Key": other})
	select {
	case c := <-seen:
		if c != [3]int{2, 0, 0} {
			t.Errorf("globex's webhook arrived when acme's requests (held, answered, abandoned) were %v, want %v", c, [3]int{2, 0, 0})
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("globex's webhook never arrived while acme's hang; acme's: %v; logs:\n%s", stuck.counts(), s.logs)
	}
	stuck.letGo()
	for _, id := range ids {
		if got := s.waitDelivered(id); len(got) == 0 || got[len(got)-1].Status != http.StatusOK {
			t.Errorf("batch %s attempts %+v", id, got)
		}
	}
}
