package apikey

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func TestCreateLookupRevoke(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := context.Background()
	key, rec, err := Create(ctx, rdb, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Lookup(ctx, rdb, key)
	if err != nil || got.Tenant != "acme" {
		t.Fatalf("lookup = %+v, %v; want tenant acme", got, err)
	}
	// Only the hash is stored: no value or field in Redis contains the key.
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if strings.Contains(k, key) {
			t.Errorf("redis key %s contains the API key", k)
		}
		if v, err := rdb.Get(ctx, k).Result(); err == nil && strings.Contains(v, key) {
			t.Errorf("redis value of %s contains the API key", k)
		}
	}
	idx, _ := rdb.HGetAll(ctx, IndexKey).Result()
	for _, v := range idx {
		if strings.Contains(v, key) {
			t.Error("key index contains the API key")
		}
	}
	if _, err := Revoke(ctx, rdb, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := Lookup(ctx, rdb, key); !errors.Is(err, ErrUnknown) {
		t.Errorf("lookup after revoke: %v, want ErrUnknown", err)
	}
	if _, err := Revoke(ctx, rdb, key); !errors.Is(err, ErrUnknown) {
		t.Errorf("second revoke: %v, want ErrUnknown", err)
	}
}

func TestCreateRejectsBadTenant(t *testing.T) {
	rdb := redistest.Client(t, srv)
	if _, _, err := Create(context.Background(), rdb, "bad tenant", ""); err == nil {
		t.Error("tenant with a space accepted")
	}
}

// A key's own limit is stored with it, read back by lookup and list, and
// cleared; a tenant's limit likewise.
func TestLimits(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := context.Background()
	key, rec, err := Create(ctx, rdb, "acme", "5000/h")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Lookup(ctx, rdb, key); got.Limit != "5000/h" {
		t.Fatalf("created with 5000/h, looked up %q", got.Limit)
	}
	if _, err := SetLimits(ctx, rdb, rec.ID, Change{Requests: ptr("unlimited")}); err != nil {
		t.Fatal(err)
	}
	list, _ := List(ctx, rdb)
	if got, _ := Lookup(ctx, rdb, key); got.Limit != "unlimited" || len(list) != 1 || list[0].Limit != "unlimited" {
		t.Fatalf("after SetLimit: lookup %q, list %+v", got.Limit, list)
	}
	if _, err := SetLimits(ctx, rdb, key, Change{Requests: ptr("")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := Lookup(ctx, rdb, key); got.Limit != "" {
		t.Fatalf("cleared, still %q", got.Limit)
	}
	if _, err := SetLimits(ctx, rdb, "nosuchid", Change{Requests: ptr("1/s")}); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := SetLimits(ctx, rdb, key, Change{BatchRows: ptr("10/d")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := Lookup(ctx, rdb, key); got.Limit != "" || got.BatchRows != "10/d" {
		t.Fatalf("batch rows set: %+v", got)
	}
	if err := SetTenantLimits(ctx, rdb, "acme", Change{Requests: ptr("100/m"), Weight: ptr("3")}); err != nil {
		t.Fatal(err)
	}
	if err := SetTenantLimits(ctx, rdb, "acme", Change{BatchRows: ptr("5/d")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := TenantLimits(ctx, rdb); m["acme"] != (Limits{Requests: "100/m", BatchRows: "5/d", Weight: "3"}) || len(m) != 1 {
		t.Fatalf("tenant limits %v", m)
	}
	if err := SetTenantLimits(ctx, rdb, "acme", Change{Requests: ptr(""), BatchRows: ptr(""), Weight: ptr("")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := TenantLimits(ctx, rdb); len(m) != 0 {
		t.Fatalf("cleared, still %v", m)
	}
}

func ptr(s string) *string { return &s }
