// Handing back the tasks of a worker that died (kill -9, OOM, a lost
// host) within seconds of its last heartbeat, instead of after asynq's
// 30 s lease and its recoverer's minute.

package worker

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// reclaimLoop looks for dead workers every heartbeat interval until ctx
// ends. Every worker runs it; queue.Reclaim hands each task back once.
func (w *Worker) reclaimLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jobs.HeartbeatInterval):
		}
		w.reclaim(ctx)
	}
}

// reclaim hands back the tasks that dead workers hold in this worker's
// queues, the sync lane's first (their callers are waiting). A worker is
// dead when its heartbeat is older than ReclaimAfter and its heartbeat
// key has expired (Redis's clock, so a skewed clock here cannot kill a
// live worker). This worker judges only after its own heartbeats have
// reached Redis for ReclaimAfter: after an outage of Redis (or of this
// worker's link to it), every worker's heartbeat is old, and the others
// need that long to renew theirs.
func (w *Worker) reclaim(ctx context.Context) {
	since := w.beating.Load()
	if since == 0 || time.Since(time.Unix(0, since)) < w.cfg.ReclaimAfter {
		return
	}
	dead, err := w.deadWorkers(ctx)
	if err != nil || len(dead) == 0 {
		return
	}
	for _, lane := range jobs.Lanes {
		if !slices.Contains(w.cfg.Lanes, lane) {
			continue
		}
		q := jobs.Queue(w.cfg.Pool, lane)
		n, err := queue.Reclaim(ctx, w.rdb, q, dead)
		if err != nil {
			w.log.Warn("reclaim failed", "queue", q, "err", err.Error())
			return
		}
		if n > 0 {
			w.metrics.reclaimed.WithLabelValues(q).Add(float64(n))
			w.log.Warn("handed back the tasks of dead workers", "queue", q, "tasks", n, "dead_workers", dead)
		}
	}
}

// deadWorkers lists the workers whose last heartbeat is older than
// ReclaimAfter and whose heartbeat key is gone.
func (w *Worker) deadWorkers(ctx context.Context) ([]string, error) {
	cutoff := time.Now().Add(-w.cfg.ReclaimAfter).UnixMilli()
	ids, err := w.rdb.ZRangeByScore(ctx, jobs.WorkersKey, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(cutoff, 10)}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	alive := make([]*redis.IntCmd, len(ids))
	if _, err := w.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, id := range ids {
			alive[i] = pl.Exists(ctx, jobs.HeartbeatKey(id))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	dead := ids[:0]
	for i, id := range ids {
		if alive[i].Val() == 0 && id != w.cfg.ID {
			dead = append(dead, id)
		}
	}
	return dead, nil
}
