package worker

import (
	"context"
	"slices"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/fairq"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// fairStale is how long an async job may stand admitted to its tenant's
// window without a task before Reap takes it that the process admitting
// it died before enqueueing it (see internal/fairq).
const fairStale = 30 * time.Second

// releaseFair frees a finished async job's place in its tenant's window and
// queues the tenant's next waiting jobs. If this fails, the reap does it.
func (w *Worker) releaseFair(ctx context.Context, p jobs.PredictPayload) {
	if err := fairq.Release(ctx, w.rdb, w.enqueuer, w.cfg.Pool, p.Tenant, p.RequestID); err != nil {
		w.log.Warn("async window not released; the reap will", "request_id", p.RequestID, "err", err.Error())
	}
}

// reapFair repairs the async windows of the pool's tenants, if this worker
// serves the async lane.
func (w *Worker) reapFair(ctx context.Context) {
	if !slices.Contains(w.cfg.Lanes, jobs.LaneAsync) {
		return
	}
	if err := fairq.Reap(ctx, w.rdb, w.enqueuer, w.cfg.Pool, fairStale); err != nil {
		w.log.Warn("async window reap failed", "err", err.Error())
	}
}
