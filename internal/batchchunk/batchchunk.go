package batchchunk

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Writer gathers one batch's records into chunks, storing each and queueing
// its task as soon as it is full. Set the exported fields, then Add.
type Writer struct {
	RDB    redis.UniversalClient
	Client *asynq.Client
	// BatchID, ModelID and Pool say whose chunks these are.
	BatchID, ModelID, Pool string
	TTL                    time.Duration // of the chunks' inputs: the batch's
	ChunkRows              int
	Window                 int // chunks of this batch queued at once
	// Progress, when set, is a field of the batch record set to the number
	// of chunks stored, in the round trip that stores each.
	Progress string
	// Charge, when set, counts a chunk's rows before it is stored (against
	// the uploader's quotas); its error stops the batch, as it is.
	Charge func(ctx context.Context, rows int) error

	chunk   bytes.Buffer
	inChunk int
	rows    int
	chunks  int
}

// Rows is how many records were added; Chunks how many chunks are stored.
func (w *Writer) Rows() int   { return w.rows }
func (w *Writer) Chunks() int { return w.chunks }

// Resume starts the writer after chunks full chunks stored by an earlier
// run: their records are not to be added again.
func (w *Writer) Resume(chunks int) {
	w.chunks, w.rows = chunks, chunks*w.ChunkRows
}

// Add appends one record to the current chunk. A full chunk is stored
// only when the next record arrives, so the last chunk is stored after the
// totals are known and the batch cannot look complete before then.
func (w *Writer) Add(ctx context.Context, rec []byte) error {
	if w.inChunk == w.ChunkRows {
		if err := w.store(ctx); err != nil {
			return err
		}
	}
	w.chunk.Write(rec)
	w.chunk.WriteByte('\n')
	w.rows++
	w.inChunk++
	return nil
}

// store writes the current chunk, queueing its task when the window allows:
// chunk n runs once chunk n-window is done. The worker finishing that chunk
// adds it to the done set, then queues n if n's input exists; here the
// input is written, then the done set read, in one pipeline. Each side
// writes before it reads, so at least one of them sees the other's write and
// queues n (both may; the task id makes it once). A plain SET takes the blob
// as Redis parsed it, where a script would copy it twice and hold Redis
// meanwhile.
func (w *Writer) store(ctx context.Context) error {
	if w.Charge != nil {
		if err := w.Charge(ctx, w.inChunk); err != nil {
			return err
		}
	}
	n := w.chunks
	prev := n - w.Window
	var done *redis.BoolCmd
	_, err := w.RDB.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, jobs.BatchInKey(w.BatchID, n), w.chunk.Bytes(), w.TTL)
		if w.Progress != "" {
			p.HSet(ctx, jobs.BatchKey(w.BatchID), w.Progress, n+1)
		}
		if prev >= 0 {
			done = p.SIsMember(ctx, jobs.BatchDoneKey(w.BatchID), prev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.chunk.Reset()
	w.inChunk = 0
	w.chunks++
	if done == nil || done.Val() {
		return w.enqueue(ctx, n)
	}
	return nil
}

func (w *Writer) enqueue(ctx context.Context, n int) error {
	task, err := jobs.NewBatchChunkTask(jobs.BatchChunkPayload{BatchID: w.BatchID, Chunk: n, ModelID: w.ModelID}, w.Pool, jobs.BatchChunkRetries)
	if err != nil {
		return err
	}
	return w.Queue(ctx, task)
}

// Queue enqueues one of the batch's tasks on the pool's batch lane and
// wakes an idle worker for it. A task queued already (its id taken: the
// worker finishing chunk n-window queued chunk n first) is not an error.
func (w *Writer) Queue(ctx context.Context, task *asynq.Task) error {
	if _, err := w.Client.EnqueueContext(ctx, task); errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	} else if err != nil {
		return err
	}
	_, _ = w.RDB.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue.Wake(ctx, p, w.Pool, jobs.LaneBatch)
		return nil
	})
	return nil
}

// Finish records the totals, then stores the last chunk.
func (w *Writer) Finish(ctx context.Context) error {
	err := w.RDB.HSet(ctx, jobs.BatchKey(w.BatchID), jobs.BatchFieldRows, w.rows, jobs.BatchFieldChunks, w.chunks+1).Err()
	if err != nil {
		return err
	}
	return w.store(ctx)
}

// Keys are the batch's keys this writer may have created: what removing
// a batch whose upload failed unlinks.
func (w *Writer) Keys() []string {
	keys := []string{jobs.BatchKey(w.BatchID), jobs.BatchDoneKey(w.BatchID)}
	for n := range w.chunks {
		keys = append(keys, jobs.BatchInKey(w.BatchID, n), jobs.BatchOutKey(w.BatchID, n))
	}
	return keys
}
