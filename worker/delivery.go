package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Batch webhooks are delivered off the scoring path. The task that finishes
// a batch (or the notify task of a canceled one) only records in Redis that
// its webhook is due and returns: attempts used to sleep between retries
// inside the asynq handler, and forty batches with a dead callback_url
// held a worker's task slots long enough to take sync predicts from
// milliseconds to seconds. Every worker that consumes the batch lane runs a
// delivery pool instead, on goroutines of its own:
//
//   - Bounded: at most WebhookConcurrency attempts at once, and
//     WebhookTenantConcurrency of one tenant's, so a tenant whose endpoint
//     hangs cannot take every slot from the others.
//   - Durable: a delivery stays in the pool's due sets (jobs.WebhookDueKey)
//     until it is delivered, out of attempts or its batch is gone. While a
//     worker attempts it, it is leased (its due time moved past the
//     attempt's timeout) so no other worker takes it. A worker that stops
//     hands its deliveries back at once, one that dies lets the lease run
//     out, and any worker of the pool then carries on from the attempts
//     recorded so far: at least once, signed as before.
//   - Timed by due time, not by sleeping: a failed attempt sets when the
//     next one is due and frees its slot.
const (
	webhookMaxAttempts  = 12
	webhookFirstBackoff = 500 * time.Millisecond
	// webhookLeaseSlack is how much longer than an attempt's timeout a
	// delivery stays leased to the worker attempting it: room for the
	// Redis round trips around the POST.
	webhookLeaseSlack = 30 * time.Second
	// webhookPoll is how often a pool with free slots looks for deliveries
	// that other workers scheduled; its own, and retries whose due time it
	// has seen, it takes when they are due.
	webhookPoll = time.Second
)

// webhookBackoff is the pause after failed attempt n (from 1): 0.5 s,
// doubling per attempt up to 64 s, so the twelfth and last attempt comes
// about 5 min 20 s after the first (0.5+1+2+...+32 s, then 4 x 64 s).
func webhookBackoff(n int) time.Duration {
	return webhookFirstBackoff << min(max(n-1, 0), 7)
}

// refreshTenant ends every script that changes a tenant's due set: it
// scores the tenant in the pool's tenant set by its earliest delivery, or
// drops it when none is left. KEYS[1] is the tenant set, KEYS[2] the
// tenant's due set, ARGV[1] the tenant.
const refreshTenant = `
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[1] then redis.call('ZADD', KEYS[1], first[2], ARGV[1]) else redis.call('ZREM', KEYS[1], ARGV[1]) end
`

// setDue makes batch ARGV[2]'s delivery due at ARGV[3] (Unix ms) under
// ZADD's flag ARGV[4] (NX: unless it is pending already; XX: only if it
// still is), or drops it when ARGV[3] is empty. It returns 1 when it added
// or dropped the delivery, else 0.
var setDue = redis.NewScript(`
local changed
if ARGV[3] == '' then
  changed = redis.call('ZREM', KEYS[2], ARGV[2])
else
  changed = redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3], ARGV[2])
end` + refreshTenant + `
return changed`)

// claimDue leases up to ARGV[4] of the tenant's deliveries due by ARGV[2]
// until ARGV[3] (Unix ms), and returns their batch ids.
var claimDue = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[2], 'XX', ARGV[3], id) end` + refreshTenant + `
return ids`)

// recordAttempt appends attempt ARGV[2] (JSON) to the batch's attempts,
// which expire with its record, and stamps field ARGV[4] with ARGV[3] when
// that is set (delivered). It returns 1, or 0 when the list no longer has
// ARGV[1] attempts (another worker, after a lease ran out, recorded its
// own first: attempt numbers stay unique), or -1 when the batch is gone.
var recordAttempt = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return -1 end
if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[3]) end
return 1`)

// webhookKeys are the keys of setDue and claimDue for tenant in pool.
func webhookKeys(pool, tenant string) []string {
	return []string{jobs.WebhookTenantsKey(pool), jobs.WebhookDueKey(pool, tenant)}
}

// scheduleWebhook makes batch id's webhook due now, unless the batch has no
// callback, has been delivered, or its delivery is pending already (the
// task that schedules it ran again).
func (w *Worker) scheduleWebhook(ctx context.Context, id string, rec jobs.BatchRecord) error {
	if rec.CallbackURL == "" || !rec.WebhookDelivered.IsZero() {
		return nil
	}
	t := rec.Tenant
	added, err := setDue.Run(ctx, w.rdb, webhookKeys(w.cfg.Pool, t), t, id, time.Now().UnixMilli(), "NX").Int()
	if err != nil {
		return fmt.Errorf("schedule the webhook of batch %s: %w", id, err)
	}
	w.log.Debug("webhook scheduled", "batch_id", id, "tenant", t, "pending_already", added == 0)
	if w.hooks != nil {
		w.hooks.poke() // this worker takes it at once when it has a slot
	}
	return nil
}

// attemptWebhook makes the next attempt of batch id's webhook, records it,
// and returns when the one after it is due: zero when none is (delivered,
// out of attempts, no callback, or the batch gone). An attempt cut short
// by ctx is not recorded.
func (w *Worker) attemptWebhook(ctx context.Context, id string) (time.Time, error) {
	pl := w.rdb.Pipeline()
	recCmd := pl.HGetAll(ctx, jobs.BatchKey(id))
	countCmd := pl.LLen(ctx, jobs.BatchHooksKey(id))
	if _, err := pl.Exec(ctx); err != nil {
		return time.Time{}, err
	}
	rec, _ := jobs.DecodeBatchRecord(recCmd.Val())
	n := int(countCmd.Val())
	if rec.CallbackURL == "" || !rec.WebhookDelivered.IsZero() || n >= webhookMaxAttempts {
		return time.Time{}, nil // expired (no record), delivered, or given up
	}
	secret, err := tenant.WebhookSecret(ctx, w.rdb, rec.Tenant)
	if err != nil {
		return time.Time{}, err
	}
	body, _ := json.Marshal(summarize(id, rec))
	a, cause := w.postWebhook(ctx, rec.CallbackURL, secret, body, n+1)
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	delivered := ""
	if a.Status >= 200 && a.Status < 300 {
		delivered = strconv.FormatInt(a.At, 10)
	}
	b, _ := json.Marshal(a)
	res, err := recordAttempt.Run(ctx, w.rdb, []string{jobs.BatchKey(id), jobs.BatchHooksKey(id)},
		n, b, delivered, jobs.BatchFieldHookDone).Int()
	switch {
	case err != nil:
		return time.Time{}, err
	case res < 0 || delivered != "":
		return time.Time{}, nil
	case res == 0:
		return time.Now(), nil // look again at what the other worker recorded
	}
	log := w.log.With("batch_id", id, "tenant", rec.Tenant, "callback_host", callbackHost(rec.CallbackURL))
	if cause != nil {
		log = log.With("err", cause.Error())
	}
	log.Warn("webhook failed", "attempt", a.Attempt, "status", a.Status, "attempt_error", a.Error)
	if a.Attempt >= webhookMaxAttempts {
		log.Warn("webhook given up", "attempts", a.Attempt)
		return time.Time{}, nil
	}
	return time.Now().Add(webhookBackoff(a.Attempt)), nil
}

// callbackHost is the host of a callback URL, for logs: its path, query
// and user info may hold a partner's token.
func callbackHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// deliveries is a worker's webhook delivery pool (see the top of this file).
type deliveries struct {
	w         *Worker
	slots     int // Config.WebhookConcurrency
	perTenant int // Config.WebhookTenantConcurrency
	lease     time.Duration
	wake      chan struct{} // a delivery scheduled here, or a slot freed
	wg        sync.WaitGroup

	mu   sync.Mutex
	busy map[string]int // attempts in flight by tenant
	n    int            // in all
}

// delivery is one batch's pending webhook.
type delivery struct{ tenant, batch string }

func newDeliveries(w *Worker) *deliveries {
	return &deliveries{w: w, slots: w.cfg.WebhookConcurrency, perTenant: w.cfg.WebhookTenantConcurrency,
		lease: w.cfg.WebhookTimeout + webhookLeaseSlack, wake: make(chan struct{}, 1), busy: map[string]int{}}
}

// poke makes the pool look for due deliveries now.
func (d *deliveries) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run takes due deliveries while slots are free until ctx ends, then
// waits for the attempts in flight, which hand their deliveries back.
func (d *deliveries) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			d.wg.Wait()
			return
		case <-d.wake:
		case <-timer.C:
		}
		timer.Reset(d.fill(ctx))
	}
}

// fill starts attempts of due deliveries in the free slots and returns how
// long to wait before looking again (unless poked).
func (d *deliveries) fill(ctx context.Context) time.Duration {
	d.mu.Lock()
	free, busy := d.slots-d.n, make(map[string]int, len(d.busy))
	for t, n := range d.busy {
		busy[t] = n
	}
	d.mu.Unlock()
	if free == 0 {
		return webhookPoll // a freed slot pokes
	}
	now := time.Now()
	claimed, next, err := d.claim(ctx, now, free, busy)
	for _, c := range claimed {
		d.start(ctx, c)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.w.log.Warn("webhook queue unavailable", "err", err.Error())
		}
		return webhookPoll
	}
	if next.IsZero() {
		return webhookPoll
	}
	return min(next.Sub(now), webhookPoll)
}

// claim leases up to free due deliveries, the earliest due first, taking
// no more of a tenant's than its free share (busy holds the attempts in
// flight by tenant). When it leaves slots free, next is when the earliest
// delivery it could take is due (zero: none known).
func (d *deliveries) claim(ctx context.Context, now time.Time, free int, busy map[string]int) (claimed []delivery, next time.Time, err error) {
	full := 0
	for _, n := range busy {
		if n >= d.perTenant {
			full++
		}
	}
	// Skipping full tenants, these many earliest ones are enough to fill
	// every free slot.
	pool := d.w.cfg.Pool
	tenants, err := d.w.rdb.ZRangeWithScores(ctx, jobs.WebhookTenantsKey(pool), 0, int64(free+full-1)).Result()
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, z := range tenants {
		t, _ := z.Member.(string)
		room := min(d.perTenant-busy[t], free-len(claimed))
		if room <= 0 {
			continue
		}
		if due := time.UnixMilli(int64(z.Score)); due.After(now) {
			return claimed, due, nil // the rest are later still
		}
		ids, err := claimDue.Run(ctx, d.w.rdb, webhookKeys(pool, t), t, now.UnixMilli(), now.Add(d.lease).UnixMilli(), room).StringSlice()
		if err != nil {
			return claimed, time.Time{}, err
		}
		for _, id := range ids {
			claimed = append(claimed, delivery{tenant: t, batch: id})
		}
		if len(claimed) == free {
			break
		}
	}
	return claimed, time.Time{}, nil
}

// start attempts c on a goroutine of its own, in one of the pool's slots.
func (d *deliveries) start(ctx context.Context, c delivery) {
	d.mu.Lock()
	d.busy[c.tenant]++
	d.n++
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.deliver(ctx, c)
		d.mu.Lock()
		if d.busy[c.tenant]--; d.busy[c.tenant] == 0 {
			delete(d.busy, c.tenant)
		}
		d.n--
		d.mu.Unlock()
		d.poke()
	}()
}

// deliver makes one attempt of c and sets when the next is due, or drops
// c when none is.
func (d *deliveries) deliver(ctx context.Context, c delivery) {
	next, err := d.w.attemptWebhook(ctx, c.batch)
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: hand it to the pool's other workers now rather than
		// when the lease runs out.
		next = time.Now()
	case err != nil:
		d.w.log.Warn("webhook attempt not made", "batch_id", c.batch, "retry_in", d.lease.String(), "err", err.Error())
		return // the lease runs out, and a worker tries again
	}
	due := ""
	if !next.IsZero() {
		due = strconv.FormatInt(next.UnixMilli(), 10)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := setDue.Run(ctx, d.w.rdb, webhookKeys(d.w.cfg.Pool, c.tenant), c.tenant, c.batch, due, "XX").Err(); err != nil {
		d.w.log.Warn("webhook not rescheduled", "batch_id", c.batch, "retry_in", d.lease.String(), "err", err.Error())
	}
}

// batchSummary is the webhook body.
type batchSummary struct {
	Event      string `json:"event"`
	BatchID    string `json:"batch_id"`
	ModelID    string `json:"model_id"`
	Status     string `json:"status"`
	RowsTotal  int    `json:"rows_total"`
	RowsDone   int    `json:"rows_done"`
	RowsFailed int    `json:"rows_failed"`
	StartedAt  string `json:"started_at,omitempty"`
	FinishedAt string `json:"finished_at,omitempty"`
	StatusURL  string `json:"status_url"`
	ResultsURL string `json:"results_url"`
}

// summarize is batch id's webhook body, from its record.
func summarize(id string, rec jobs.BatchRecord) batchSummary {
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	status, event := rec.Status(rec.Chunks), "batch.completed"
	if status == jobs.BatchCanceled {
		event = "batch.canceled"
	}
	return batchSummary{Event: event, BatchID: id, ModelID: rec.ModelID, Status: status, RowsTotal: rec.Rows,
		RowsDone: rec.OK + rec.Failed, RowsFailed: rec.Failed, StartedAt: stamp(rec.Started), FinishedAt: stamp(rec.Finished),
		StatusURL: "/api/v1/batches/" + id, ResultsURL: "/api/v1/batches/" + id + "/results"}
}
