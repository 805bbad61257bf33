package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// newBatchRecord writes a running batch of two chunks, chunk 0's input
// stored, with a one-hour lifetime, and returns chunk 0's payload.
func newBatchRecord(t *testing.T, rdb redis.UniversalClient, id string, fields ...any) jobs.BatchChunkPayload {
	t.Helper()
	ctx := context.Background()
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, jobs.BatchKey(id), append([]any{"chunks", 2, "rows_ok", 0, "rows_failed", 0}, fields...)...)
		p.PExpire(ctx, jobs.BatchKey(id), time.Hour)
		p.Set(ctx, jobs.BatchInKey(id, 0), "input rows", time.Hour)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return jobs.BatchChunkPayload{BatchID: id, Chunk: 0, ModelID: "21"}
}

// staged lists the staged results of a chunk left in Redis.
func staged(t *testing.T, rdb redis.UniversalClient, p jobs.BatchChunkPayload) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), jobs.BatchStagedOutKey(p.BatchID, p.Chunk, "*")).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Two runs of one chunk, one after the other or at once (a retry racing a
// run thought lost): the first to finish stores its results and counts its
// rows (in the batch and in the tenant's usage), the other changes nothing,
// and neither leaves its staged copy.
func TestStoreChunkOnce(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := context.Background()
	w := &Worker{rdb: rdb, log: slog.New(slog.NewTextHandler(io.Discard, nil)), usage: usage.NewMeter(rdb, usage.Config{})}
	for i := range 20 {
		p := newBatchRecord(t, rdb, fmt.Sprintf("once-%d", i))
		blobs := []string{"results of run a", "results of run b"}
		errs := make([]error, 2)
		run := func(r int) {
			errs[r] = w.storeChunk(ctx, p, jobs.BatchRecord{Tenant: "acme", KeyID: "k1"}, []byte(blobs[r]), chunkCounts{ok: 3, failed: 1, warned: 2}, time.Now())
		}
		if i%2 == 0 { // one run after the other
			run(0)
			run(1)
		} else { // both at once
			var wg sync.WaitGroup
			wg.Go(func() { run(0) })
			wg.Go(func() { run(1) })
			wg.Wait()
		}
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v", i, errs)
		}
		out, err := rdb.Get(ctx, jobs.BatchOutKey(p.BatchID, 0)).Result()
		if err != nil || (out != blobs[0] && out != blobs[1]) {
			t.Fatalf("round %d: results %q, %v", i, out, err)
		}
		if i%2 == 0 && out != blobs[0] {
			t.Errorf("round %d: the later run replaced the results: %q", i, out)
		}
		rec := rdb.HGetAll(ctx, jobs.BatchKey(p.BatchID)).Val()
		if rec["rows_ok"] != "3" || rec["rows_failed"] != "1" || rec["rows_warned"] != "2" {
			t.Errorf("round %d: rows counted %s ok, %s failed, %s warned; want 3, 1 and 2", i, rec["rows_ok"], rec["rows_failed"], rec["rows_warned"])
		}
		if rec["finished_ms"] != "" {
			t.Errorf("round %d: one of two chunks done, yet finished_ms is %s", i, rec["finished_ms"])
		}
		if n := rdb.Exists(ctx, jobs.BatchInKey(p.BatchID, 0)).Val(); n != 0 {
			t.Errorf("round %d: the done chunk's input is still stored", i)
		}
		if ttl := rdb.PTTL(ctx, jobs.BatchOutKey(p.BatchID, 0)).Val(); ttl < 59*time.Minute || ttl > time.Hour {
			t.Errorf("round %d: results expire in %v, not with the batch (1h)", i, ttl)
		}
		if keys := staged(t, rdb, p); len(keys) != 0 {
			t.Errorf("round %d: staged results left behind: %v", i, keys)
		}
		if u := w.usage.Totals()["acme"]; u.BatchRows != int64(3*(i+1)) || u.FailedRows != int64(i+1) {
			t.Errorf("round %d: usage counted %d batch rows and %d failed, want %d and %d", i, u.BatchRows, u.FailedRows, 3*(i+1), i+1)
		}
	}
}

// A run finishing after the batch was canceled or expired stores nothing
// and leaves nothing behind.
func TestStoreChunkGoneBatch(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := context.Background()
	w := &Worker{rdb: rdb, log: slog.New(slog.NewTextHandler(io.Discard, nil)), usage: usage.NewMeter(rdb, usage.Config{})}
	canceled := newBatchRecord(t, rdb, "canceled", "canceled_ms", time.Now().UnixMilli())
	expired := newBatchRecord(t, rdb, "expired")
	if err := rdb.Del(ctx, jobs.BatchKey(expired.BatchID)).Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []jobs.BatchChunkPayload{canceled, expired} {
		if err := w.storeChunk(ctx, p, jobs.BatchRecord{}, []byte("late results"), chunkCounts{ok: 3}, time.Now()); err != nil {
			t.Fatalf("%s: %v", p.BatchID, err)
		}
		if n := rdb.Exists(ctx, jobs.BatchOutKey(p.BatchID, 0)).Val(); n != 0 {
			t.Errorf("%s: results stored", p.BatchID)
		}
		if n := rdb.SCard(ctx, jobs.BatchDoneKey(p.BatchID)).Val(); n != 0 {
			t.Errorf("%s: chunk marked done", p.BatchID)
		}
		if keys := staged(t, rdb, p); len(keys) != 0 {
			t.Errorf("%s: staged results left behind: %v", p.BatchID, keys)
		}
	}
}
