// Storing an upload's rows as chunks and queueing their tasks within the
// batch's window.

package api

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// add appends one record to the current chunk. A full chunk is stored
// only when the next record arrives, so the last chunk is stored after the
// totals are known and the batch cannot look complete before then.
func (u *batchUpload) add(rec []byte) error {
	if u.rows >= u.s.cfg.Batch.MaxRows {
		return errorf(CodeTooLarge, "The batch is over the %d-row limit; split the file.", u.s.cfg.Batch.MaxRows)
	}
	if u.inChunk == u.s.cfg.Batch.ChunkRows {
		if err := u.store(); err != nil {
			return err
		}
	}
	u.chunk.Write(rec)
	u.chunk.WriteByte('\n')
	u.rows++
	u.inChunk++
	u.pace.Step()
	return nil
}

// store writes the current chunk, queueing its task when the window allows:
// chunk n runs once chunk n-window is done. The worker finishing that chunk
// adds it to the done set, then queues n if n's input exists (queueNext); here
// the input is written, then the done set read, in one pipeline. Each side
// writes before it reads, so at least one of them sees the other's write and
// queues n (both may; the task id makes it once). A plain SET takes the blob
// as Redis parsed it, where a script would copy it twice and hold Redis
// meanwhile.
func (u *batchUpload) store() error {
	if err := u.chargeRows(); err != nil {
		return err
	}
	n := u.chunks
	prev := n - u.window
	var done *redis.BoolCmd
	_, err := u.s.rdb.Pipelined(u.ctx, func(p redis.Pipeliner) error {
		p.Set(u.ctx, jobs.BatchInKey(u.id, n), u.chunk.Bytes(), u.ttl)
		if prev >= 0 {
			done = p.SIsMember(u.ctx, jobs.BatchDoneKey(u.id), prev)
		}
		return nil
	})
	if err != nil {
		return u.redisErr(err)
	}
	u.chunk.Reset()
	u.inChunk = 0
	u.chunks++
	if done == nil || done.Val() {
		return u.enqueue(n)
	}
	return nil
}

func (u *batchUpload) enqueue(n int) error {
	task, err := jobs.NewBatchChunkTask(jobs.BatchChunkPayload{BatchID: u.id, Chunk: n, ModelID: u.spec.ID}, u.spec.Pool, jobs.BatchChunkRetries)
	if err != nil {
		return err
	}
	if _, err := u.s.client.EnqueueContext(u.ctx, task); errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // the worker finishing chunk n-window queued it first
	} else if err != nil {
		return u.redisErr(err)
	}
	_, _ = u.s.rdb.Pipelined(u.ctx, func(p redis.Pipeliner) error {
		queue.Wake(u.ctx, p, u.spec.Pool, jobs.LaneBatch)
		return nil
	})
	return nil
}

// finish records the totals, then stores the last chunk.
func (u *batchUpload) finish() error {
	err := u.s.rdb.HSet(u.ctx, jobs.BatchKey(u.id), jobs.BatchFieldRows, u.rows, jobs.BatchFieldChunks, u.chunks+1).Err()
	if err != nil {
		return u.redisErr(err)
	}
	return u.store()
}

// abandon removes a batch whose upload failed; its queued chunks find the
// record gone and do nothing.
func (u *batchUpload) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys := []string{jobs.BatchKey(u.id), jobs.BatchDoneKey(u.id)}
	for n := range u.chunks {
		keys = append(keys, jobs.BatchInKey(u.id, n), jobs.BatchOutKey(u.id, n))
	}
	if err := u.s.rdb.Unlink(ctx, keys...).Err(); err != nil {
		u.s.log.Warn("abandoned batch not removed", "batch_id", u.id, "err", err.Error())
	}
}
