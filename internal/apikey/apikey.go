package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnknown is returned for a key that was never issued or was revoked.
var ErrUnknown = errors.New("unknown API key")

// IndexKey is the Redis hash of key id -> key record, for listing and revoking.
const IndexKey = "hokusai:apikeys"

func hashKey(h string) string { return "hokusai:apikey:" + h }

// Record is what is stored for one key, under its hash.
type Record struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	CreatedAt time.Time `json:"created_at"`
	Hash      string    `json:"hash"`
	// Limit is the key's own rate limit ("5000/h", "unlimited"), or empty
	// for the API's default. Its syntax is internal/ratelimit's, checked by
	// the callers that set it.
	Limit string `json:"limit,omitempty"`
}

// TenantLimitsKey is the Redis hash of tenant -> the tenant's own rate limit.
const TenantLimitsKey = "hokusai:tenant_limits"

var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Hash returns the hex SHA-256 of a key, the only form that is stored.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Create issues a new key for tenant, with its own rate limit if limit is
// set, and returns it with its record.
func Create(ctx context.Context, rdb redis.UniversalClient, tenant, limit string) (string, Record, error) {
	if !tenantPattern.MatchString(tenant) {
		return "", Record{}, fmt.Errorf("tenant %q must be 1-64 letters, digits, dots, dashes or underscores", tenant)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Record{}, err
	}
	key := "hk_" + base64.RawURLEncoding.EncodeToString(raw[:])
	h := Hash(key)
	rec := Record{ID: h[:12], Tenant: tenant, CreatedAt: time.Now().UTC().Truncate(time.Second), Hash: h, Limit: limit}
	if err := store(ctx, rdb, rec, Event{Action: ActionCreate, Limit: limit}); err != nil {
		return "", Record{}, fmt.Errorf("store API key: %w", err)
	}
	return key, rec, nil
}

// store writes rec where lookups (by hash) and the index (by id) find it,
// and audits the change e of rec's key with it.
func store(ctx context.Context, rdb redis.UniversalClient, rec Record, e Event) error {
	b, _ := json.Marshal(rec)
	e.Tenant, e.KeyID = rec.Tenant, rec.ID
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, hashKey(rec.Hash), b, 0)
		p.HSet(ctx, IndexKey, rec.ID, b)
		record(ctx, p, e)
		return nil
	})
	return err
}

// SetLimit gives the key with id (or the key itself) its own rate limit,
// or the default again when limit is empty, and returns its record.
func SetLimit(ctx context.Context, rdb redis.UniversalClient, keyOrID, limit string) (Record, error) {
	rec, err := find(ctx, rdb, keyOrID)
	if err != nil {
		return Record{}, err
	}
	e := Event{Action: ActionLimit, Limit: limit, PreviousLimit: rec.Limit}
	rec.Limit = limit
	if err := store(ctx, rdb, rec, e); err != nil {
		return Record{}, fmt.Errorf("set the API key's limit: %w", err)
	}
	return rec, nil
}

// SetTenantLimit gives tenant its own rate limit over all its keys, or the
// default again when limit is empty.
func SetTenantLimit(ctx context.Context, rdb redis.UniversalClient, tenant, limit string) error {
	if !tenantPattern.MatchString(tenant) {
		return fmt.Errorf("tenant %q must be 1-64 letters, digits, dots, dashes or underscores", tenant)
	}
	prev, err := rdb.HGet(ctx, TenantLimitsKey, tenant).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read the tenant's limit: %w", err)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if limit == "" {
			p.HDel(ctx, TenantLimitsKey, tenant)
		} else {
			p.HSet(ctx, TenantLimitsKey, tenant, limit)
		}
		record(ctx, p, Event{Action: ActionTenantLimit, Tenant: tenant, Limit: limit, PreviousLimit: prev})
		return nil
	})
	if err != nil {
		return fmt.Errorf("set the tenant's limit: %w", err)
	}
	return nil
}

// TenantLimits returns every tenant's own rate limit, by tenant.
func TenantLimits(ctx context.Context, rdb redis.UniversalClient) (map[string]string, error) {
	m, err := rdb.HGetAll(ctx, TenantLimitsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read tenant limits: %w", err)
	}
	return m, nil
}

// Lookup returns the record of key, or ErrUnknown.
func Lookup(ctx context.Context, rdb redis.UniversalClient, key string) (Record, error) {
	b, err := rdb.Get(ctx, hashKey(Hash(key))).Bytes()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrUnknown
	}
	if err != nil {
		return Record{}, fmt.Errorf("look up API key: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("API key record is not valid JSON: %w", err)
	}
	return rec, nil
}

// Revoke deletes a key given the key itself or its id (as `keys list` shows).
func Revoke(ctx context.Context, rdb redis.UniversalClient, keyOrID string) (Record, error) {
	rec, err := find(ctx, rdb, keyOrID)
	if err != nil {
		return Record{}, err
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, hashKey(rec.Hash))
		p.HDel(ctx, IndexKey, rec.ID)
		record(ctx, p, Event{Action: ActionRevoke, Tenant: rec.Tenant, KeyID: rec.ID, PreviousLimit: rec.Limit})
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("revoke API key: %w", err)
	}
	return rec, nil
}

// find reads the record of a key given the key itself or its id.
func find(ctx context.Context, rdb redis.UniversalClient, keyOrID string) (Record, error) {
	id := keyOrID
	if len(keyOrID) > 12 {
		id = Hash(keyOrID)[:12]
	}
	b, err := rdb.HGet(ctx, IndexKey, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrUnknown
	}
	if err != nil {
		return Record{}, fmt.Errorf("find API key: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// List returns every key's record (never a key).
func List(ctx context.Context, rdb redis.UniversalClient) ([]Record, error) {
	all, err := rdb.HGetAll(ctx, IndexKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	out := make([]Record, 0, len(all))
	for _, v := range all {
		var rec Record
		if json.Unmarshal([]byte(v), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out, nil
}
