// Storing a chunk's results exactly once: the Lua script and its staging.

package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// finishChunk stores a chunk's results once: the first run to finish the
// chunk adds it to the done set, moves its staged results into place, counts
// its rows and drops its input; later runs drop their staged copy and change
// nothing else. The run whose chunk completes the batch stamps finished_ms and
// is the one that sends the webhook. Everything expires with the batch record.
// The results reach Redis by a plain SET beforehand (storeChunk): a script's
// arguments are copied twice while Redis serves no one else.
var finishChunk = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('DEL', KEYS[5]) return {-1, 0} end
if redis.call('HEXISTS', KEYS[1], 'canceled_ms') == 1 then redis.call('DEL', KEYS[5]) return {-2, 0} end
if redis.call('EXISTS', KEYS[5]) == 0 then return {-3, 0} end
local added = redis.call('SADD', KEYS[2], ARGV[1])
if added == 1 then
  redis.call('RENAME', KEYS[5], KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('HINCRBY', KEYS[1], 'rows_ok', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'rows_failed', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'rows_warned', ARGV[5])
  redis.call('DEL', KEYS[4])
  redis.call('PEXPIRE', KEYS[2], ttl)
  local done = redis.call('SCARD', KEYS[2])
  if tostring(done) == redis.call('HGET', KEYS[1], 'chunks') then
    redis.call('HSET', KEYS[1], 'finished_ms', ARGV[4], 'finisher', ARGV[1])
  end
else
  redis.call('DEL', KEYS[5])
end
return {added, redis.call('SCARD', KEYS[2])}
`)

// stagedTTL bounds how long a run's staged results outlive a worker that
// died between staging them and finishing the chunk.
const stagedTTL = 10 * time.Minute

// storeChunk stores a chunk's results once (see finishChunk).
func (w *Worker) storeChunk(ctx context.Context, p jobs.BatchChunkPayload, rec jobs.BatchRecord, blob []byte, n chunkCounts, start time.Time) error {
	staged := jobs.BatchStagedOutKey(p.BatchID, p.Chunk, uuid.NewString())
	if err := w.rdb.Set(ctx, staged, blob, stagedTTL).Err(); err != nil {
		return fmt.Errorf("stage results of batch %s chunk %d: %w", p.BatchID, p.Chunk, err)
	}
	b := jobs.BatchKey(p.BatchID)
	res, err := finishChunk.Run(ctx, w.rdb,
		[]string{b, jobs.BatchDoneKey(p.BatchID), jobs.BatchOutKey(p.BatchID, p.Chunk), jobs.BatchInKey(p.BatchID, p.Chunk), staged},
		p.Chunk, n.ok, n.failed, time.Now().UnixMilli(), n.warned).Int64Slice()
	if err == nil && res[0] == -3 {
		err = fmt.Errorf("staged results outlived %s", stagedTTL)
	}
	if err != nil {
		return fmt.Errorf("store results of batch %s chunk %d: %w", p.BatchID, p.Chunk, err)
	}
	if res[0] == 1 { // the run that stored the chunk is its one count
		w.usage.Add(rec.Tenant, rec.KeyID, p.ModelID, usage.Counts{BatchRows: int64(n.ok), FailedRows: int64(n.failed), Compute: n.compute})
	}
	w.log.Debug("chunk done", "batch_id", p.BatchID, "chunk", p.Chunk, "rows_ok", n.ok, "rows_failed", n.failed, "rows_warned", n.warned,
		"first_time", res[0] == 1, "chunks_done", res[1], "duration_us", time.Since(start).Microseconds())
	return nil
}
