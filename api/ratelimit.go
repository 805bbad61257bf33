package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/ratelimit"
)

// Rate limits, as the old API had them: every authenticated /api/v1
// request counts against its key's quota (Config.RateLimit, or the key's
// own) and its tenant's (Config.TenantRateLimit, or the tenant's own), in
// one Redis script exact across API processes. A request costs 1; a list
// of rows costs one per row, the rest charged once the body is parsed. A
// refusal is 429 rate_limited with Retry-After, charged to nothing; every
// answer carries RateLimit-Policy and RateLimit.
//
// The takes of one key that arrive while one of its takes is in Redis go
// together in one script call when it is back (ratelimit.Gatherer), each
// decided as if alone: a busy key costs a round trip per burst, not per
// request.
//
// A key refused once is refused from memory until its Retry-After has
// passed: a GCRA bucket refuses until then whatever other processes do,
// so a tenant hammering past its limit costs no Redis round trip.

// limiter holds the parsed defaults, the refusals remembered, and the
// gatherer that counts.
type limiter struct {
	requests, batchRows quota // the defaults
	takes               *ratelimit.Gatherer

	mu      sync.Mutex
	refused map[string]refusal // by bucket key
}

// refusal is a bucket's last refusal: under limit, it admits one again at
// until.
type refusal struct {
	until time.Time
	limit ratelimit.Limit
}

// quota is one kind of limit, a key's and its tenant's.
type quota struct {
	name        string // of the buckets: "" for requests
	key, tenant ratelimit.Limit
}

func newLimiter(cfg Config, rdb redis.UniversalClient) *limiter {
	parse := func(s string) ratelimit.Limit {
		l, _ := ratelimit.ParseLimit(s) // checked by Validate
		return l
	}
	return &limiter{
		requests:  quota{key: parse(cfg.RateLimit), tenant: parse(cfg.TenantRateLimit)},
		batchRows: quota{name: ratelimit.BatchRows, key: parse(cfg.BatchRowLimit), tenant: parse(cfg.TenantBatchRowLimit)},
		takes:     ratelimit.NewGatherer(rdb),
		refused:   map[string]refusal{},
	}
}

// buckets are the quotas of key rec's requests.
func (s *Server) buckets(rec apikey.Record) []ratelimit.Bucket {
	return s.limits.requests.buckets(rec, rec.Limit, s.state.get().tenantLimits[rec.Tenant].Requests)
}

// limits are q's limits of a key whose own limit is keyOwn and its
// tenant's tenantOwn. A limit that no longer parses (set by hand in Redis)
// falls back to the default.
func (q quota) limits(keyOwn, tenantOwn string) (key, tenant ratelimit.Limit) {
	key, tenant = q.key, q.tenant
	if l, err := ratelimit.ParseLimit(keyOwn); keyOwn != "" && err == nil {
		key = l
	}
	if l, err := ratelimit.ParseLimit(tenantOwn); tenantOwn != "" && err == nil {
		tenant = l
	}
	return key, tenant
}

// buckets are q's buckets for key rec, whose own limit is keyOwn and its
// tenant's tenantOwn.
func (q quota) buckets(rec apikey.Record, keyOwn, tenantOwn string) []ratelimit.Bucket {
	key, tenant := q.limits(keyOwn, tenantOwn)
	return ratelimit.Buckets(q.name, rec.Tenant, rec.ID, key, tenant)
}

// batchRowLimits are the batch row limits of key rec and its tenant now.
func (s *Server) batchRowLimits(rec apikey.Record) (key, tenant ratelimit.Limit) {
	return s.limits.batchRows.limits(rec.BatchRows, s.state.get().tenantLimits[rec.Tenant].BatchRows)
}

// chargeRows counts the rows of a chunk being stored against the
// uploader's batch row quotas, exact across API processes. Redis failing
// is as for requests.
func (u *batchUpload) chargeRows(ctx context.Context, rows int) error {
	s, rec := u.s, u.key
	key, tenant := s.batchRowLimits(rec)
	buckets := ratelimit.Buckets(ratelimit.BatchRows, rec.Tenant, rec.ID, key, tenant)
	d, err := s.limits.takes.Take(ctx, buckets, int64(rows), time.Now())
	if err != nil {
		return s.notCounted(func() error { return u.redisErr(err) }, "batch row limits not checked", "batch_id", u.id, "err", err.Error())
	}
	if d.Allowed {
		return nil
	}
	e := retryAfter(d)
	e.Detail = fmt.Sprintf("Batch row limit exceeded: the %s's limit is %s batch rows, and this file would pass it; "+
		"retry after Retry-After seconds, or with fewer rows.", strings.TrimPrefix(d.Binding.Policy, "batch_rows-"), d.Binding.Limit)
	return e
}

// notCounted is the answer when Redis could not count against the limits,
// counted in the metrics: with RateLimitFail closed, unavailable's error;
// open, none (the work goes through), logged as msg with args.
func (s *Server) notCounted(unavailable func() error, msg string, args ...any) error {
	s.metrics.rateErrors.Inc()
	if s.cfg.RateLimitFail == "closed" {
		return unavailable()
	}
	s.log.Warn(msg, args...)
	return nil
}

// charge counts cost units of the caller's quotas (auth has run) and sets
// the RateLimit headers; it returns the 429 when they have no room.
func (s *Server) charge(c echo.Context, cost int64) error {
	rec, _ := c.Get("key").(apikey.Record)
	buckets := s.buckets(rec)
	now := time.Now()
	if cost == 1 {
		if d, ok := s.limits.remembered(buckets, now); ok {
			d.SetHeaders(c.Response().Header())
			return rateLimited(c, d)
		}
	}
	ctx := c.Request().Context()
	d, err := s.limits.takes.Take(ctx, buckets, cost, now)
	if err != nil && ctx.Err() != nil {
		return err // the caller left while its request was counted
	}
	if err != nil {
		return s.notCounted(func() error { return s.unavailable(c, err) }, "rate limits not checked", "request_id", requestID(c), "err", err.Error())
	}
	d.SetHeaders(c.Response().Header())
	if d.Allowed {
		return nil
	}
	if cost == 1 {
		s.limits.remember(d.Binding, now.Add(d.RetryAfter))
	}
	return rateLimited(c, d)
}

// remembered is the refusal of a request of cost 1 that one of buckets
// gave recently and would give again now.
func (l *limiter) remembered(buckets []ratelimit.Bucket, now time.Time) (ratelimit.Decision, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range buckets {
		if r, ok := l.refused[b.Key]; ok {
			// A limit changed since (lifted, raised) voids the refusal.
			if r.limit == b.Limit && now.Before(r.until) {
				return ratelimit.Refusal(b, r.until.Sub(now), buckets), true
			}
			delete(l.refused, b.Key)
		}
	}
	return ratelimit.Decision{}, false
}

func (l *limiter) remember(b ratelimit.Bucket, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.refused) > 100_000 { // bound memory; forgetting only costs a round trip
		clear(l.refused)
	}
	l.refused[b.Key] = refusal{until: until, limit: b.Limit}
}

// rateLimitedKey marks a request refused by its rate limits: its unread
// body is drained only a little (see rateLimitedDrainBytes).
const rateLimitedKey = "rate_limited"

func rateLimited(c echo.Context, d ratelimit.Decision) *Error {
	c.Set(rateLimitedKey, true)
	e := retryAfter(d)
	e.Detail = fmt.Sprintf("Rate limit exceeded: the %s's limit is %s requests (a list counts one per row); retry after Retry-After seconds.",
		d.Binding.Policy, d.Binding.Limit)
	return e
}

// retryAfter is the 429 of refusal d, without its detail.
func retryAfter(d ratelimit.Decision) *Error {
	return &Error{Code: CodeRateLimited, RetryAfter: strconv.FormatInt(max(int64((d.RetryAfter+time.Second-1)/time.Second), 1), 10)}
}
