package api

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Concurrency caps: each API process holds at most Config.TenantSyncConcurrency
// sync predicts of one tenant in the queue or running at once. A tenant's
// next one waits in this process, behind its own, for a slot (in arrival
// order, within its sync wait); past Config.TenantSyncQueue waiting, or
// when its wait runs out first, it is answered 429 rate_limited and was
// never enqueued. So a partner's burst queues behind its own work, and the
// sync queue the workers share holds at most the cap per tenant per API
// process.

// inflight is the sync slots of every tenant with one held or awaited.
type inflight struct {
	limit, queue int

	mu      sync.Mutex
	tenants map[string]*tenantSlots
}

// tenantSlots is one tenant's: a semaphore of limit slots, and how many
// requests use it (holding or waiting), to forget it when none does.
type tenantSlots struct {
	sem           chan struct{}
	users, queued int
}

func newInflight(limit, queue int) *inflight {
	return &inflight{limit: limit, queue: queue, tenants: map[string]*tenantSlots{}}
}

// acquire takes one of tenant's slots, waiting up to wait for one. It
// returns the release, or the 429 of a tenant with too many in flight.
func (f *inflight) acquire(ctx context.Context, tenant string, wait time.Duration) (func(), error) {
	f.mu.Lock()
	t := f.tenants[tenant]
	if t == nil {
		t = &tenantSlots{sem: make(chan struct{}, f.limit)}
		f.tenants[tenant] = t
	}
	t.users++
	f.mu.Unlock()
	release := func() {
		<-t.sem
		f.leave(tenant, t, false)
	}
	select {
	case t.sem <- struct{}{}:
		return release, nil
	default:
	}
	f.mu.Lock()
	if t.queued >= f.queue {
		f.mu.Unlock()
		f.leave(tenant, t, false)
		return nil, f.refusal()
	}
	t.queued++
	f.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case t.sem <- struct{}{}: // senders are served in arrival order
		f.mu.Lock()
		t.queued--
		f.mu.Unlock()
		return release, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	f.leave(tenant, t, true)
	return nil, f.refusal()
}

// leave drops one user of t, and t itself when it has none left.
func (f *inflight) leave(tenant string, t *tenantSlots, queued bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if queued {
		t.queued--
	}
	if t.users--; t.users == 0 {
		delete(f.tenants, tenant)
	}
}

// waiting is how many requests of every tenant wait for a slot.
func (f *inflight) waiting() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tenants {
		n += t.queued
	}
	return float64(n)
}

func (f *inflight) refusal() *Error {
	return &Error{Code: CodeRateLimited, RetryAfter: "1",
		Detail: fmt.Sprintf("Too many sync predicts in flight: a tenant may have %d at once (and %d waiting); "+
			"this one was not queued. Retry after Retry-After seconds, or send it as a job.", f.limit, f.queue)}
}
