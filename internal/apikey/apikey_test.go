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
	key, rec, err := Create(ctx, rdb, "acme")
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
	if _, _, err := Create(context.Background(), rdb, "bad tenant"); err == nil {
		t.Error("tenant with a space accepted")
	}
}
