package queue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MemGuard is a go-redis hook, for clients that read queues with asynq's
// Inspector (the API's: dashboard, metrics, job status), that keeps asynq v0.26's memory-usage script
// from failing a queue read. The script adds up MEMORY USAGE over a sample of
// a queue's task hashes; a retained task whose hash has expired while its id
// still sits in the completed set (until a worker's janitor drops it) turns
// that sum into a Lua error, and with it Inspector.GetQueueInfo, the
// dashboard's queue pages and a metrics scrape. On that error the hook
// answers 0 bytes ("not known now") so the rest of the read goes through.
// It costs other commands one function call.
type MemGuard struct{}

func (MemGuard) DialHook(next redis.DialHook) redis.DialHook { return next }

func (MemGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (MemGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil || redis.HasErrorPrefix(err, "NOSCRIPT") || !isMemoryUsageScript(cmd) {
			return err
		}
		c, ok := cmd.(*redis.Cmd)
		if !ok {
			return err
		}
		c.SetVal(int64(0))
		c.SetErr(nil)
		return nil
	}
}

// isMemoryUsageScript recognises asynq v0.26's memory-usage script by its
// seven keys: asynq:{q}:active, :pending, :scheduled, :retry, :archived,
// :completed, :groups.
func isMemoryUsageScript(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 10 {
		return false
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return false
	}
	if n, _ := args[2].(int); n != 7 {
		return false
	}
	first, _ := args[3].(string)
	last, _ := args[9].(string)
	return strings.HasPrefix(first, keyPrefix) && strings.HasSuffix(first, "}:active") && strings.HasSuffix(last, "}:groups")
}
