package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	env := map[string]string{"REDIS_URL": srv.URL}
	err := run(context.Background(), append([]string{"hokusai"}, args...), func(k string) string { return env[k] }, strings.NewReader(""), &out, io.Discard)
	return out.String(), err
}

func TestKeysCommands(t *testing.T) {
	rdb := redistest.Client(t, srv)
	out, err := cli(t, "keys", "create", "--tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	if !strings.HasPrefix(key, "hk_") || strings.Contains(key, "\n") {
		t.Fatalf("keys create printed %q, want only the key", out)
	}
	rec, err := apikey.Lookup(t.Context(), rdb, key)
	if err != nil || rec.Tenant != "acme" {
		t.Fatalf("stored key: %+v %v", rec, err)
	}
	if out, _ := cli(t, "keys", "list"); !strings.Contains(out, rec.ID) || strings.Contains(out, key) {
		t.Errorf("keys list: %q (want the id, never the key)", out)
	}
	if _, err := cli(t, "keys", "revoke", rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := apikey.Lookup(t.Context(), rdb, key); err == nil {
		t.Error("key still valid after revoke")
	}
	if _, err := cli(t, "keys", "create"); err == nil {
		t.Error("keys create without --tenant succeeded")
	}
}

// keys create --limit, keys limits for a key and a tenant, and keys list
// showing both; limits the API could not read are refused.
func TestKeysLimits(t *testing.T) {
	rdb := redistest.Client(t, srv)
	out, err := cli(t, "keys", "create", "--tenant", "acme", "--limit", "5000/h")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	rec, err := apikey.Lookup(t.Context(), rdb, key)
	if err != nil || rec.Limit != "5000/h" {
		t.Fatalf("created: %+v %v", rec, err)
	}
	if out, err := cli(t, "keys", "limits", rec.ID, "--limit", "unlimited"); err != nil || !strings.Contains(out, "limit unlimited") {
		t.Fatalf("keys limits ID: %q %v", out, err)
	}
	if out, err := cli(t, "keys", "limits", "--tenant", "acme", "--limit", "20000/d"); err != nil || !strings.Contains(out, "tenant acme: limit 20000/d") {
		t.Fatalf("keys limits --tenant: %q %v", out, err)
	}
	if out, err := cli(t, "keys", "limits", rec.ID, "--batch-rows", "1000000/d"); err != nil || !strings.Contains(out, "batch rows 1000000/d") {
		t.Fatalf("keys limits --batch-rows: %q %v", out, err)
	}
	if out, err := cli(t, "keys", "limits", "--tenant", "acme", "--weight", "3"); err != nil || !strings.Contains(out, "tenant acme: weight 3") {
		t.Fatalf("keys limits --weight: %q %v", out, err)
	}
	out, _ = cli(t, "keys", "list")
	if !regexp.MustCompile(rec.ID + `\s+acme\s+\S+\s+unlimited\s+1000000/d\s+20000/d\s+default\s+3\b`).MatchString(out) {
		t.Errorf("keys list:\n%s", out)
	}
	if _, err := cli(t, "keys", "limits", rec.ID, "--limit", "default"); err != nil {
		t.Fatal(err)
	}
	if got, err := apikey.Lookup(t.Context(), rdb, key); err != nil || got.Limit != "" {
		t.Errorf("back to the default: %+v %v", got, err)
	}
	for _, bad := range [][]string{
		{"keys", "create", "--tenant", "acme", "--limit", "lots"},
		{"keys", "limits", rec.ID, "--limit", "5/week"},
		{"keys", "limits", rec.ID},
		{"keys", "limits", "--limit", "5/h"},
		{"keys", "limits", rec.ID, "--tenant", "acme", "--limit", "5/h"},
		{"keys", "limits", rec.ID, "--weight", "2"},
		{"keys", "limits", "--tenant", "acme", "--weight", "0"},
		{"keys", "limits", "--tenant", "acme", "--batch-rows", "many"},
	} {
		if _, err := cli(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestModelsAndWorkersCommands(t *testing.T) {
	rdb := redistest.Client(t, srv)
	file := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(file, []byte("models:\n  - id: \"21\"\n    name: Leads\n    source: file://models/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, "models", "apply", "-f", file); err != nil || !strings.Contains(out, "applied model 21") {
		t.Fatalf("models apply: %q %v", out, err)
	}
	if out, _ := cli(t, "models", "list"); !strings.Contains(out, "file://models/x") {
		t.Errorf("models list: %q", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("models: [{id: '1', source: 's3://x'}]"), 0o644)
	if _, err := cli(t, "models", "apply", "-f", bad); err == nil || !strings.Contains(err.Error(), "file://") {
		t.Errorf("bad registry: %v", err)
	}

	seen := time.Now().UTC().Format(time.RFC3339Nano)
	for id, hb := range map[string]string{
		"w1": `{"worker_id":"w1","pool":"default","state":"not_ready","reasons":["hf_token_missing"],"models":[],"seen_at":"` + seen + `"}`,
		"w2": `{"worker_id":"w2","pool":"default","state":"ready","lanes":["sync","async"],"models":[],"seen_at":"` + seen + `"}`,
	} {
		rdb.Set(t.Context(), jobs.HeartbeatKey(id), hb, time.Minute)
		rdb.ZAdd(t.Context(), jobs.WorkersKey, redisZ(id))
	}
	out, err := cli(t, "workers")
	if err != nil || !regexp.MustCompile(`(?m)^w1 +default +all +not_ready .*hf_token_missing`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^w2 +default +sync,async +ready `).MatchString(out) {
		t.Errorf("workers: %q %v", out, err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if _, err := cli(t, "frobnicate"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("unknown command: %v", err)
	}
}

func redisZ(member string) redis.Z {
	return redis.Z{Score: float64(time.Now().UnixMilli()), Member: member}
}
