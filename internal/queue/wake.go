package queue

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// wakeBacklog bounds a wake list: more wake-ups than this while every
// worker is busy buy nothing.
const wakeBacklog = 64

// Wake queues, on pl, a wake-up for an idle worker of pool consuming lane:
// a push to the lane's wake list, on which DequeueHook blocks.
func Wake(ctx context.Context, pl redis.Pipeliner, pool string, lane jobs.Lane) {
	key := jobs.WakeKey(pool, lane)
	pl.LPush(ctx, key, string(lane))
	pl.LTrim(ctx, key, 0, wakeBacklog-1)
}
