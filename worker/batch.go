// Batch chunk tasks: scoring a chunk within the process's CPU bound, failing
// its rows on its last attempt, queueing the next chunk and the webhook.

package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/cpuclass"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// blockPause is the scorer's pause between blocks. A goroutine that only
// yields (runtime.Gosched) stays runnable, and while every processor has a
// runnable goroutine the Go scheduler checks the network only every 10 ms:
// a sync request's next step (its HTTP body, Redis's reply) would sit
// unnoticed that long. Sleeping parks the scorer, so the processor polls
// the network before it resumes. Measured on 2 cores: sync p50 during a
// batch 6.2 ms with yields, 2.3 ms with these pauses, for about 10% of the
// batch's speed.
const blockPause = 20 * time.Microsecond

// batchCPU bounds how many chunks this process scores at once: its cores,
// whatever the number of workers in it. Sync work keeps a short wait for a
// processor because scorers pause between blocks and the chunk window keeps
// task slots free. Measured on 2 cores (tools/batch-bench.sh), leaving one
// core out makes a 1M-row batch about a third slower and sync p99 still
// triples, so the batch takes them all.
var batchCPU = make(chan struct{}, runtime.GOMAXPROCS(0))

// batchRecord reads batch id's record; ok is false when it has none.
func (w *Worker) batchRecord(ctx context.Context, id string) (rec jobs.BatchRecord, ok bool, err error) {
	fields, err := w.rdb.HGetAll(ctx, jobs.BatchKey(id)).Result()
	if err != nil {
		return rec, false, err
	}
	rec, ok = jobs.DecodeBatchRecord(fields)
	return rec, ok, nil
}

// handleBatchChunk scores one chunk of a batch. A chunk run twice (a retry,
// a worker killed after storing) stores nothing the second time, so every
// row is counted and returned exactly once.
func (w *Worker) handleBatchChunk(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeBatchChunk(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	log := w.log.With("batch_id", p.BatchID, "chunk", p.Chunk, "model_id", p.ModelID)
	rec, ok, err := w.batchRecord(ctx, p.BatchID)
	if err != nil {
		return err
	}
	if !ok || !rec.Canceled.IsZero() || rec.Error != nil {
		log.Info("chunk dropped", "outcome", "batch expired, canceled or failed")
		return nil
	}
	done, err := w.rdb.SIsMember(ctx, jobs.BatchDoneKey(p.BatchID), p.Chunk).Result()
	if err != nil {
		return err
	}
	if !done {
		if err := w.scoreChunk(ctx, p, rec); err != nil {
			if !lastAttempt(ctx) || ctx.Err() != nil {
				return err // retried, or back to the queue on shutdown
			}
			// Archiving the task would leave the batch running for ever:
			// fail the chunk's rows instead, so the batch finishes and says so.
			log.Error("chunk failed on its last attempt", "err", err.Error())
			if err := w.failChunk(ctx, p, rec); err != nil {
				return err
			}
		}
	}
	if err := w.queueNext(ctx, p, rec); err != nil {
		return err
	}
	return w.maybeNotify(ctx, p)
}

// queueNext queues chunk n+window when it is stored and not done (its input
// key exists exactly then). The API, storing that chunk, queues it itself
// when chunk n is done by then; both may, and the task id makes it once.
func (w *Worker) queueNext(ctx context.Context, p jobs.BatchChunkPayload, rec jobs.BatchRecord) error {
	window := rec.Window
	if window < 1 {
		return fmt.Errorf("batch %s has no chunk window: %w", p.BatchID, asynq.SkipRetry)
	}
	next := jobs.BatchChunkPayload{BatchID: p.BatchID, Chunk: p.Chunk + window, ModelID: p.ModelID}
	n, err := w.rdb.Exists(ctx, jobs.BatchInKey(p.BatchID, next.Chunk)).Result()
	if err != nil || n == 0 {
		return err
	}
	task, err := jobs.NewBatchChunkTask(next, rec.Pool, jobs.BatchChunkRetries)
	if err != nil {
		return err
	}
	_, err = w.enqueuer.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	// Wake an idle worker of the pool (this one included, once it returns)
	// rather than leave the chunk to the next poll, up to a second away.
	_, err = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue.Wake(ctx, p, rec.Pool, jobs.LaneBatch)
		return nil
	})
	return err
}

// scoreChunk scores the chunk's rows and stores the results.
func (w *Worker) scoreChunk(ctx context.Context, p jobs.BatchChunkPayload, rec jobs.BatchRecord) error {
	m, ok := w.model(p.ModelID)
	if !ok {
		return fmt.Errorf("model %s is not loaded on worker %s", p.ModelID, w.cfg.ID)
	}
	start := time.Now()
	pl := w.rdb.Pipeline()
	pl.HSetNX(ctx, jobs.BatchKey(p.BatchID), jobs.BatchFieldStarted, start.UnixMilli())
	in := pl.Get(ctx, jobs.BatchInKey(p.BatchID, p.Chunk))
	if _, err := pl.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	input, err := in.Result()
	if errors.Is(err, redis.Nil) {
		// Only cancel and expiry remove an input before it is done.
		w.log.Info("chunk dropped", "batch_id", p.BatchID, "chunk", p.Chunk, "outcome", "input gone")
		return nil
	}
	chunkRows := rec.ChunkRows
	var blob []byte
	var n chunkCounts
	if sc, err := newChunkScorer(m, rec); err != nil {
		// The chunk cannot be read at all (its CSV header no longer fits
		// the loaded model, say): every row fails, and the batch finishes.
		blob, n.failed = unusableChunk(input, p.Chunk*chunkRows, rec, err)
	} else {
		sc.warned = func(s *jobs.Schema, warns []jobs.Warning) { w.metrics.warned(p.ModelID, s, warns) }
		if w.cfg.BatchOnly() {
			// No predicts of its own to let through: between blocks it only
			// offers its core to whatever the kernel has queued there (a
			// sync predict's next step, in another process).
			sc.pause = cpuclass.Yield
		} else {
			// The pauses let this worker's own predicts through (see
			// blockPause).
			sc.pause = func() { time.Sleep(blockPause) }
		}
		select {
		case batchCPU <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		began := time.Now()
		blob, n, err = sc.run(ctx, input, p.Chunk*chunkRows)
		<-batchCPU
		n.compute = time.Since(began)
		w.metrics.rows(p.ModelID, n.compute, n.ok+n.failed)
		noteOf(ctx).rows = n.ok + n.failed
		if err != nil {
			return err
		}
	}
	return w.storeChunk(ctx, p, rec, blob, n, start)
}

// lastAttempt reports whether a failure of this task run is final.
func lastAttempt(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	most, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= most
}

// failChunk stores every row of a chunk that failed all its attempts as a
// row error; the cause stays in the worker's log.
func (w *Worker) failChunk(ctx context.Context, p jobs.BatchChunkPayload, rec jobs.BatchRecord) error {
	input, err := w.rdb.Get(ctx, jobs.BatchInKey(p.BatchID, p.Chunk)).Result()
	if errors.Is(err, redis.Nil) {
		return nil // canceled or expired meanwhile
	}
	if err != nil {
		return err
	}
	most, _ := asynq.GetMaxRetry(ctx)
	blob, failed := failRows(input, p.Chunk*rec.ChunkRows, rec, &batchfile.RowError{
		Code: jobs.RowChunkFailed, Detail: fmt.Sprintf("Scoring this row's chunk failed %d times; submit these rows again.", most+1)})
	return w.storeChunk(ctx, p, rec, blob, chunkCounts{failed: failed}, time.Now())
}

// unusableChunk fails every row of a chunk with why it cannot be scored.
func unusableChunk(input string, first int, rec jobs.BatchRecord, cause error) ([]byte, int) {
	// Every row of the chunk stores the cause: a short one.
	return failRows(input, first, rec, &batchfile.RowError{Code: jobs.RowBatchUnusable, Detail: batchfile.Clip(cause.Error(), 256)})
}

// failRows fails every row of a chunk of batch rec with e, keeping each
// row's id so partners can still match it.
func failRows(input string, first int, rec jobs.BatchRecord, e *batchfile.RowError) ([]byte, int) {
	csv := rec.Format == jobs.BatchCSV
	header, _ := rec.CSVHeader() // none: no ids
	ids := batchfile.NewIDReader(header, csv)
	out := batchfile.NewResultWriter(nil, len(input)/4)
	n := 0
	for ; input != ""; n++ {
		var r string
		r, input = batchfile.NextRecord(input, csv)
		out.Fail(first+n, ids.ID(r), e)
	}
	return out.Bytes(), n
}

// maybeNotify schedules the completion webhook when this chunk finished the
// batch (see delivery.go).
func (w *Worker) maybeNotify(ctx context.Context, p jobs.BatchChunkPayload) error {
	rec, _, err := w.batchRecord(ctx, p.BatchID)
	if err != nil {
		return err
	}
	if rec.Finisher != strconv.Itoa(p.Chunk) || !rec.Canceled.IsZero() || rec.OutputURL != "" {
		return nil // another chunk's, the cancel's notify task's, or the S3 task's once written
	}
	return w.scheduleWebhook(ctx, p.BatchID, rec)
}

// handleBatchNotify schedules a canceled batch's webhook.
func (w *Worker) handleBatchNotify(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeBatchNotify(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	rec, _, err := w.batchRecord(ctx, p.BatchID)
	if err != nil || rec.Canceled.IsZero() {
		return err // expired, or not canceled: nothing to announce here
	}
	return w.scheduleWebhook(ctx, p.BatchID, rec)
}
