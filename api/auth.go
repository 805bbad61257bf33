package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
)

// keyCache remembers recent key lookups so a busy partner costs no Redis
// round trip per request; a revoked key stops working within ttl.
type keyCache struct {
	rdb redis.UniversalClient
	ttl time.Duration

	mu sync.Mutex
	m  map[string]keyEntry // by key hash
}

type keyEntry struct {
	rec   apikey.Record
	until time.Time
}

// lookup returns key's record: its tenant, id and own rate limit.
func (k *keyCache) lookup(ctx context.Context, key string) (apikey.Record, error) {
	h := apikey.Hash(key)
	now := time.Now()
	k.mu.Lock()
	e, ok := k.m[h]
	k.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.rec, nil
	}
	rec, err := apikey.Lookup(ctx, k.rdb, key)
	if err != nil {
		return apikey.Record{}, err
	}
	k.mu.Lock()
	if len(k.m) > 100_000 { // bound memory against key spraying
		clear(k.m)
	}
	k.m[h] = keyEntry{rec: rec, until: now.Add(k.ttl)}
	k.mu.Unlock()
	return rec, nil
}

// presentedKey finds the key in X-API-Key, "Authorization: Bearer K" or
// "Authorization: ApiKey K", and only then in the query parameter api_key,
// which the old API documented (as not recommended) and partners still use;
// fromQuery says it came from there.
func presentedKey(c echo.Context) (key string, fromQuery bool) {
	if k := strings.TrimSpace(c.Request().Header.Get("X-API-Key")); k != "" {
		return k, false
	}
	scheme, key, ok := strings.Cut(strings.TrimSpace(c.Request().Header.Get("Authorization")), " ")
	if ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "ApiKey")) {
		return strings.TrimSpace(key), false
	}
	if k := strings.TrimSpace(c.QueryParam(queryKeyParam)); k != "" {
		return k, true
	}
	return "", false
}

// queryKeyDeprecation is the Deprecation header (RFC 9745) of answers to
// requests authenticated by ?api_key=: keys in URLs end up in proxy logs and
// browser histories, so partners are told to move to a header. The date is
// that of the old API's contract, which already called the form not
// recommended.
var queryKeyDeprecation = "@" + strconv.FormatInt(time.Date(2025, time.October, 1, 0, 0, 0, 0, time.UTC).Unix(), 10)

// auth requires a valid API key, records the caller's tenant and key, and
// counts the request against their rate limits (ratelimit.go).
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, fromQuery := presentedKey(c)
		if key == "" {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hokusai"`)
			return errorf(CodeUnauthorized, "An API key is required: send it as X-API-Key or Authorization: Bearer.")
		}
		rec, err := s.keys.lookup(c.Request().Context(), key)
		switch {
		case errors.Is(err, apikey.ErrUnknown):
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hokusai", error="invalid_token"`)
			return errorf(CodeUnauthorized, "The API key is not valid.")
		case err != nil:
			return s.unavailable(c, err)
		}
		if fromQuery {
			h := c.Response().Header()
			h.Set("Deprecation", queryKeyDeprecation)
			h.Add("Link", `</docs>; rel="deprecation"`)
		}
		c.Set("tenant", rec.Tenant)
		c.Set("key", rec)
		if err := s.charge(c, 1); err != nil {
			return err
		}
		return next(c)
	}
}

func tenantOf(c echo.Context) string {
	t, _ := c.Get("tenant").(string)
	return t
}

// unavailable is the answer when Redis cannot be reached, or cannot take
// the write (redisError). The cause is logged, not sent: it names hosts.
func (s *Server) unavailable(c echo.Context, err error) *Error {
	s.log.Warn("redis unavailable", "request_id", requestID(c), "err", err.Error())
	return redisError(err)
}

// queueUnavailable is the answer when Redis cannot be reached.
func queueUnavailable() *Error {
	return &Error{Code: CodeQueueUnavailable, Detail: "The job queue is unreachable right now; retry shortly.", RetryAfter: retryAfterUnavailable}
}
