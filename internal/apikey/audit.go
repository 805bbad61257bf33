package apikey

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// AuditKey is the stream of changes to keys and limits, capped at about
// auditMax entries (the oldest go first). An entry's id is its time.
const AuditKey = "hokusai:apikeys:audit"

const auditMax = 100_000

// Audit actions.
const (
	ActionCreate      = "create"
	ActionRevoke      = "revoke"
	ActionLimit       = "limit"        // a key's own limit
	ActionTenantLimit = "tenant_limit" // a tenant's limit
)

// The settings a limit change names (see Limits).
const (
	SettingRequests  = "requests"
	SettingBatchRows = "batch_rows"
	SettingWeight    = "weight"
)

// Event is one audited change. Limits are as set ("5000/h", "unlimited"),
// empty for the default; KeyID is empty for a tenant's limit. A key itself
// is never recorded.
type Event struct {
	At             time.Time
	Action, Tenant string
	Setting        string // of a create or a limit change: which limit

	KeyID                string
	Limit, PreviousLimit string
	Actor                string
}

type actorKey struct{}

// WithActor names who makes the changes done under ctx; every change is
// recorded with it ("unknown" without one).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// actorOf is ctx's actor, printable and at most 128 bytes.
func actorOf(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	a = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, a))
	if len(a) > 128 {
		a = strings.ToValidUTF8(a[:128], "")
	}
	if a == "" {
		return "unknown"
	}
	return a
}

// record adds e, by ctx's actor, to the audit stream in p: the change's
// own transaction.
func record(ctx context.Context, p redis.Pipeliner, e Event) {
	p.XAdd(ctx, &redis.XAddArgs{Stream: AuditKey, MaxLen: auditMax, Approx: true, Values: []any{
		"action", e.Action, "setting", e.Setting, "tenant", e.Tenant, "key_id", e.KeyID,
		"limit", e.Limit, "previous_limit", e.PreviousLimit, "actor", actorOf(ctx)}})
}

// AuditLog returns the changes since since, oldest first, of tenant (all
// tenants when empty).
func AuditLog(ctx context.Context, rdb redis.UniversalClient, tenant string, since time.Time) ([]Event, error) {
	var out []Event
	start := strconv.FormatInt(max(since.UnixMilli(), 0), 10)
	for {
		msgs, err := rdb.XRangeN(ctx, AuditKey, start, "+", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("read the key audit log: %w", err)
		}
		for _, m := range msgs {
			e := eventOf(m)
			if tenant == "" || e.Tenant == tenant {
				out = append(out, e)
			}
		}
		if len(msgs) < 1000 {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func eventOf(m redis.XMessage) Event {
	s := func(k string) string { v, _ := m.Values[k].(string); return v }
	ms, _, _ := strings.Cut(m.ID, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return Event{At: time.UnixMilli(n).UTC(), Action: s("action"), Setting: s("setting"), Tenant: s("tenant"), KeyID: s("key_id"),
		Limit: s("limit"), PreviousLimit: s("previous_limit"), Actor: s("actor")}
}
