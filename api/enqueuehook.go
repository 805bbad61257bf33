package api

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// followKey carries, in a context, the commands that must follow one task's
// enqueue: its job record and the wake-up of an idle worker.
type followKey struct{}

func withFollowUp(ctx context.Context, f func(redis.Pipeliner)) context.Context {
	return context.WithValue(ctx, followKey{}, f)
}

// followUpHook sends asynq's enqueue script and the commands that follow it
// in one round trip: on the API's client, a script call whose context
// carries follow-up commands is sent as a pipeline with them. Redis runs
// them in order, so the task exists before a worker is woken for it. If the
// script is not cached yet, go-redis retries with EVAL and the follow-ups are
// sent again, which they tolerate (a SET, and a wake list bounded by LTRIM).
type followUpHook struct{ rdb redis.UniversalClient }

func (h followUpHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h followUpHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h followUpHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		f, ok := ctx.Value(followKey{}).(func(redis.Pipeliner))
		if name := cmd.Name(); !ok || (name != "evalsha" && name != "eval") {
			return next(ctx, cmd)
		}
		_, _ = h.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			_ = pl.Process(ctx, cmd)
			f(pl)
			return nil
		})
		return cmd.Err()
	}
}
