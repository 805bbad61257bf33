package worker

import (
	"context"
	"slices"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// reapFair frees the async lane's places held by tasks that ended without
// a release and queues tenants' waiting tasks that fit (queue.ReapFair),
// if this worker serves the async lane.
func (w *Worker) reapFair(ctx context.Context) {
	if !slices.Contains(w.cfg.Lanes, jobs.LaneAsync) {
		return
	}
	if err := queue.ReapFair(ctx, w.rdb, w.cfg.Pool); err != nil {
		w.log.Warn("async window reap failed", "err", err.Error())
	}
}
