// Upload checks: failing a batch whose upload stopped where the API could
// not clean up after it (see jobs.TypeBatchUploadCheck).

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// handleUploadCheck looks at a batch whose body is being uploaded: done
// once the upload is stored (or the batch is gone, canceled or failed),
// checked again later while the API still renews its sign of life, and
// failed when it has been silent for jobs.UploadStale.
func (w *Worker) handleUploadCheck(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeBatchUploadCheck(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	rec, ok, err := w.batchRecord(ctx, p.BatchID)
	if err != nil || !ok || rec.Stored || !rec.Canceled.IsZero() || rec.Error != nil || rec.InputURL != "" {
		return err
	}
	if time.Since(rec.UploadSeen) < jobs.UploadStale {
		p.Check++
		next, err := jobs.NewBatchUploadCheckTask(p, rec.Pool)
		if err != nil {
			return err
		}
		if _, err := w.enqueuer.EnqueueContext(ctx, next); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return err
		}
		return nil
	}
	return w.failUpload(ctx, p.BatchID, rec)
}

// failUpload records why the batch failed, removes the rows and results
// its upload stored, and lets the record expire in jobs.InterruptedTTL.
// Its chunk tasks still queued find the error and drop out; one running
// now stores its results under the record's short TTL.
func (w *Worker) failUpload(ctx context.Context, id string, rec jobs.BatchRecord) error {
	ej, _ := json.Marshal(jobs.BatchError{Code: jobs.BatchErrInterrupted,
		Detail: "The upload stopped before the whole file was stored (the client went away, or the queue was unreachable); submit the file again."})
	keys := []string{jobs.BatchDoneKey(id)}
	for n := range rec.StoredChunks {
		keys = append(keys, jobs.BatchInKey(id, n), jobs.BatchOutKey(id, n))
	}
	_, err := w.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, jobs.BatchKey(id), jobs.BatchFieldError, string(ej), jobs.BatchFieldFinished, time.Now().UnixMilli())
		pl.PExpire(ctx, jobs.BatchKey(id), jobs.InterruptedTTL)
		pl.Unlink(ctx, keys...)
		return nil
	})
	if err == nil {
		w.log.Warn("batch upload interrupted; batch failed", "batch_id", id, "chunks_stored", rec.StoredChunks)
	}
	return err
}
