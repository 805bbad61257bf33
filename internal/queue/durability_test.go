package queue

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redisproc"
)

func TestParseDurability(t *testing.T) {
	for _, tc := range []struct {
		in       string
		replicas int
		ok       bool
	}{
		{"", 0, true},
		{"none", 0, true},
		{" replicas:1 ", 1, true},
		{"replicas:16", 16, true},
		{"replicas:0", 0, false},
		{"replicas:17", 0, false},
		{"replicas:", 0, false},
		{"replicas:one", 0, false},
		{"all", 0, false},
	} {
		d, err := ParseDurability(tc.in)
		if (err == nil) != tc.ok || d.Replicas != tc.replicas {
			t.Errorf("ParseDurability(%q) = %+v, %v; want %d replicas, ok %t", tc.in, d, err, tc.replicas, tc.ok)
		}
		if err == nil {
			if back, _ := ParseDurability(d.String()); back != d {
				t.Errorf("%q: String %q does not parse back", tc.in, d.String())
			}
		}
	}
}

// A write refused at maxmemory is recognised both from go-redis and through
// asynq's enqueue, which keeps only the message; other failures are not.
func TestIsOutOfMemory(t *testing.T) {
	own, err := redisproc.StartWith(t.TempDir(), "--maxmemory", "1", "--maxmemory-policy", "noeviction")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(own.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	setErr := rdb.Set(ctx, "k", "v", 0).Err()
	_, enqErr := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, asynq.NewTask("t", nil))
	for name, err := range map[string]error{"SET": setErr, "asynq enqueue": enqErr} {
		if !IsOutOfMemory(err) {
			t.Errorf("%s at maxmemory: %v, not recognised as out of memory", name, err)
		}
	}
	if err := rdb.Do(ctx, "nosuchcommand").Err(); err == nil || IsOutOfMemory(err) {
		t.Errorf("an unknown command's error %v counts as out of memory", err)
	}
}
