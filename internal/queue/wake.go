package queue

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Backlog bounds a wake list: more wake-ups than this while every worker is
// busy buy nothing.
const Backlog = 64

// Push queues, on pl, a wake-up for an idle worker of pool consuming lane.
func Push(ctx context.Context, pl redis.Pipeliner, pool string, lane jobs.Lane) {
	key := jobs.WakeKey(pool, lane)
	pl.LPush(ctx, key, string(lane))
	pl.LTrim(ctx, key, 0, Backlog-1)
}
