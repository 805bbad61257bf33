package api

import (
	"context"
	"errors"
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
	tenant string
	until  time.Time
}

func (k *keyCache) tenant(ctx context.Context, key string) (string, error) {
	h := apikey.Hash(key)
	now := time.Now()
	k.mu.Lock()
	e, ok := k.m[h]
	k.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.tenant, nil
	}
	rec, err := apikey.Lookup(ctx, k.rdb, key)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	if len(k.m) > 100_000 { // bound memory against key spraying
		clear(k.m)
	}
	k.m[h] = keyEntry{tenant: rec.Tenant, until: now.Add(k.ttl)}
	k.mu.Unlock()
	return rec.Tenant, nil
}

// presentedKey finds the key in X-API-Key, "Authorization: Bearer K" or
// "Authorization: ApiKey K".
func presentedKey(c echo.Context) string {
	if k := strings.TrimSpace(c.Request().Header.Get("X-API-Key")); k != "" {
		return k
	}
	scheme, key, ok := strings.Cut(strings.TrimSpace(c.Request().Header.Get("Authorization")), " ")
	if ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "ApiKey")) {
		return strings.TrimSpace(key)
	}
	return ""
}

// auth requires a valid API key and records the caller's tenant.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := presentedKey(c)
		if key == "" {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hokusai"`)
			return errorf(CodeUnauthorized, "An API key is required: send it as X-API-Key or Authorization: Bearer.")
		}
		tenant, err := s.keys.tenant(c.Request().Context(), key)
		switch {
		case errors.Is(err, apikey.ErrUnknown):
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hokusai", error="invalid_token"`)
			return errorf(CodeUnauthorized, "The API key is not valid.")
		case err != nil:
			return s.unavailable(c, err)
		}
		c.Set("tenant", tenant)
		return next(c)
	}
}

func tenantOf(c echo.Context) string {
	t, _ := c.Get("tenant").(string)
	return t
}

// unavailable is the answer when Redis cannot be reached. The cause is
// logged, not sent: it names hosts.
func (s *Server) unavailable(c echo.Context, err error) *Error {
	s.log.Warn("redis unavailable", "request_id", requestID(c), "err", err.Error())
	return &Error{Code: CodeQueueUnavailable, Detail: "The job queue is unreachable right now; retry shortly.", RetryAfter: retryAfterUnavailable}
}
