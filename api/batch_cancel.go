// DELETE /api/v1/batches/:id: canceling a batch.

package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// cancelBatch answers DELETE /api/v1/batches/:id: chunks not yet done are
// dropped; finished batches answer 409.
func (s *Server) cancelBatch() echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.batch(c)
		if err != nil {
			return err
		}
		switch b.Status {
		case jobs.BatchCanceled:
			// Again, in case the first cancel could not queue the webhook.
			if err := s.notifyCanceled(c.Request().Context(), b); err != nil {
				return s.unavailable(c, err)
			}
			return c.JSON(http.StatusOK, b)
		case jobs.BatchSucceeded, jobs.BatchPartiallyFailed, jobs.BatchFailed:
			return errorf(CodeConflict, "Batch %s already %s; there is nothing to cancel.", b.BatchID, b.Status)
		}
		ctx := c.Request().Context()
		now := time.Now().UnixMilli()
		keys := make([]string, 0, b.ChunksTotal)
		for n := range b.ChunksTotal {
			keys = append(keys, jobs.BatchInKey(b.BatchID, n))
		}
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, jobs.BatchKey(b.BatchID), jobs.BatchFieldCanceled, now)
			if len(keys) > 0 {
				p.Unlink(ctx, keys...)
			}
			return nil
		})
		if err != nil {
			return s.unavailable(c, err)
		}
		if err := s.notifyCanceled(ctx, b); err != nil {
			return s.unavailable(c, err)
		}
		b.Status, b.CanceledAt, b.ETASeconds = jobs.BatchCanceled, stamp(time.UnixMilli(now).UTC()), nil
		return c.JSON(http.StatusOK, b)
	}
}

// notifyCanceled queues the webhook of canceled batch b, if it has a
// callback, once whatever the number of calls: a worker posts it, since
// the API makes no outbound calls.
func (s *Server) notifyCanceled(ctx context.Context, b *batchResponse) error {
	if b.CallbackURL == "" {
		return nil
	}
	task, err := jobs.NewBatchNotifyTask(b.BatchID, b.pool)
	if err != nil {
		return err
	}
	if _, err := s.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}
