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
	// BatchRows is the key's own limit on batch rows ("1000000/d"), or
	// empty for the API's default.
	BatchRows string `json:"batch_rows,omitempty"`
}

// Limits names a key's or a tenant's own limits; an empty one is the
// API's default.
type Limits struct {
	Requests  string // rate limit of requests, e.g. "5000/h"
	BatchRows string // rate limit of batch rows, e.g. "1000000/d"
	Weight    string // a tenant's share of the workers, a whole number (tenants only)
}

// The tenants' own settings, each a Redis hash of tenant -> value.
const (
	TenantLimitsKey    = "hokusai:tenant_limits"
	TenantBatchRowsKey = "hokusai:tenant_batch_rows"
	TenantWeightsKey   = "hokusai:tenant_weights"
)

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
	if err := store(ctx, rdb, rec, Event{Action: ActionCreate, Setting: SettingRequests, Limit: limit}); err != nil {
		return "", Record{}, fmt.Errorf("store API key: %w", err)
	}
	return key, rec, nil
}

// store writes rec where lookups (by hash) and the index (by id) find it,
// and audits the changes es of rec's key with it.
func store(ctx context.Context, rdb redis.UniversalClient, rec Record, es ...Event) error {
	b, _ := json.Marshal(rec)
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, hashKey(rec.Hash), b, 0)
		p.HSet(ctx, IndexKey, rec.ID, b)
		for _, e := range es {
			e.Tenant, e.KeyID = rec.Tenant, rec.ID
			record(ctx, p, e)
		}
		return nil
	})
	return err
}

// Change says which limits to set: a nil one is left as it is, an empty
// one is the default again.
type Change struct {
	Requests, BatchRows, Weight *string
}

// SetLimits gives the key with id (or the key itself) its own limits and
// returns its record. A key has no weight of its own.
func SetLimits(ctx context.Context, rdb redis.UniversalClient, keyOrID string, ch Change) (Record, error) {
	rec, err := find(ctx, rdb, keyOrID)
	if err != nil {
		return Record{}, err
	}
	var es []Event
	if ch.Requests != nil {
		es = append(es, Event{Action: ActionLimit, Setting: SettingRequests, Limit: *ch.Requests, PreviousLimit: rec.Limit})
		rec.Limit = *ch.Requests
	}
	if ch.BatchRows != nil {
		es = append(es, Event{Action: ActionLimit, Setting: SettingBatchRows, Limit: *ch.BatchRows, PreviousLimit: rec.BatchRows})
		rec.BatchRows = *ch.BatchRows
	}
	if err := store(ctx, rdb, rec, es...); err != nil {
		return Record{}, fmt.Errorf("set the API key's limits: %w", err)
	}
	return rec, nil
}

// tenantHashes are the hashes of the settings of Limits, in its order, and
// settings their names in the audit log.
var (
	tenantHashes = [3]string{TenantLimitsKey, TenantBatchRowsKey, TenantWeightsKey}
	settings     = [3]string{SettingRequests, SettingBatchRows, SettingWeight}
)

// SetTenantLimits gives tenant its own limits, over all its keys.
func SetTenantLimits(ctx context.Context, rdb redis.UniversalClient, tenant string, ch Change) error {
	if !tenantPattern.MatchString(tenant) {
		return fmt.Errorf("tenant %q must be 1-64 letters, digits, dots, dashes or underscores", tenant)
	}
	changes := [3]*string{ch.Requests, ch.BatchRows, ch.Weight}
	var prev [3]*redis.StringCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, v := range changes {
			if v != nil {
				prev[i] = p.HGet(ctx, tenantHashes[i], tenant)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read the tenant's limits: %w", err)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, v := range changes {
			switch {
			case v == nil:
				continue
			case *v == "":
				p.HDel(ctx, tenantHashes[i], tenant)
			default:
				p.HSet(ctx, tenantHashes[i], tenant, *v)
			}
			record(ctx, p, Event{Action: ActionTenantLimit, Setting: settings[i], Tenant: tenant, Limit: *v, PreviousLimit: prev[i].Val()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set the tenant's limits: %w", err)
	}
	return nil
}

// TenantLimits returns every tenant's own limits, by tenant.
func TenantLimits(ctx context.Context, rdb redis.UniversalClient) (map[string]Limits, error) {
	var cmds [3]*redis.MapStringStringCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range tenantHashes {
			cmds[i] = p.HGetAll(ctx, h)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tenant limits: %w", err)
	}
	out := map[string]Limits{}
	for i, c := range cmds {
		for tenant, v := range c.Val() {
			l := out[tenant]
			switch i {
			case 0:
				l.Requests = v
			case 1:
				l.BatchRows = v
			default:
				l.Weight = v
			}
			out[tenant] = l
		}
	}
	return out, nil
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

// ByID reads the record of the key with id (as `keys list` shows it), or
// ErrUnknown once the key is revoked.
func ByID(ctx context.Context, rdb redis.UniversalClient, id string) (Record, error) {
	if len(id) != 12 {
		return Record{}, ErrUnknown
	}
	return find(ctx, rdb, id)
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
