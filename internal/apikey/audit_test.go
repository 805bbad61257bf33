package apikey

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

// Every change is audited with its actor, in order, and filtered by
// tenant and time; the stream never holds a key, only ids.
func TestAuditLog(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := WithActor(t.Context(), "ops@host\n")
	before := time.Now().Add(-time.Second)
	key, rec, err := Create(ctx, rdb, "acme", "5000/h")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SetLimits(ctx, rdb, rec.ID, Change{Requests: ptr("unlimited"), BatchRows: ptr("10/d")}); err != nil {
		t.Fatal(err)
	}
	if err := SetTenantLimits(ctx, rdb, "acme", Change{Requests: ptr("20000/d"), Weight: ptr("2")}); err != nil {
		t.Fatal(err)
	}
	if err := SetTenantLimits(context.Background(), rdb, "acme", Change{Requests: ptr("")}); err != nil {
		t.Fatal(err)
	}
	_, other, err := Create(ctx, rdb, "beta", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Revoke(ctx, rdb, key); err != nil {
		t.Fatal(err)
	}
	got, err := AuditLog(t.Context(), rdb, "acme", before)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Action: ActionCreate, Setting: SettingRequests, Tenant: "acme", KeyID: rec.ID, Limit: "5000/h", Actor: "ops@host"},
		{Action: ActionLimit, Setting: SettingRequests, Tenant: "acme", KeyID: rec.ID, Limit: "unlimited", PreviousLimit: "5000/h", Actor: "ops@host"},
		{Action: ActionLimit, Setting: SettingBatchRows, Tenant: "acme", KeyID: rec.ID, Limit: "10/d", Actor: "ops@host"},
		{Action: ActionTenantLimit, Setting: SettingRequests, Tenant: "acme", Limit: "20000/d", Actor: "ops@host"},
		{Action: ActionTenantLimit, Setting: SettingWeight, Tenant: "acme", Limit: "2", Actor: "ops@host"},
		{Action: ActionTenantLimit, Setting: SettingRequests, Tenant: "acme", PreviousLimit: "20000/d", Actor: "unknown"},
		{Action: ActionRevoke, Tenant: "acme", KeyID: rec.ID, PreviousLimit: "unlimited", Actor: "ops@host"},
	}
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(Event{}, "At")); d != "" {
		t.Errorf("acme's audit log (-want +got):\n%s", d)
	}
	for _, e := range got {
		if e.At.Before(before) || e.At.After(time.Now()) {
			t.Errorf("event at %v, not between %v and now", e.At, before)
		}
	}
	all, _ := AuditLog(t.Context(), rdb, "", before)
	if len(all) != len(want)+1 || all[len(want)-1].KeyID != other.ID {
		t.Errorf("all tenants: %+v, want %d events with beta's create last but one", all, len(want)+1)
	}
	if later, _ := AuditLog(t.Context(), rdb, "", time.Now().Add(time.Minute)); len(later) != 0 {
		t.Errorf("events after now: %+v", later)
	}
	msgs := rdb.XRange(t.Context(), AuditKey, "-", "+").Val()
	for _, m := range msgs {
		for _, v := range m.Values {
			if s, _ := v.(string); strings.Contains(s, key) || strings.Contains(s, rec.Hash) {
				t.Errorf("audit entry %s holds the key or its hash", m.ID)
			}
		}
	}
}

func TestActorIsBounded(t *testing.T) {
	long := strings.Repeat("é", 100)
	for in, want := range map[string]string{"": "unknown", " \t": "unknown", "a\x1b[31mb": "a[31mb", long: strings.Repeat("é", 64)} {
		if got := actorOf(WithActor(context.Background(), in)); got != want {
			t.Errorf("actor of %q = %q, want %q", in, got, want)
		}
	}
}
