package worker

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// storeAndReply writes a result with store's commands and sends msg to the
// API process waiting on replyTo (none when empty). With durability none
// both go in one round trip; under replicas:N a WAIT follows the writes and
// the reply is sent only once the replicas hold them, so a caller is never
// answered from a result a failover could lose. The error is the writes'
// or the WAIT's (the task is then retried: rewriting a result is
// idempotent); a reply that fails only is logged, since the caller reads
// the stored result by id. then, when set, queues commands that share the
// round trip after the writes, whose errors are the caller's to check.
func (w *Worker) storeAndReply(ctx context.Context, store func(redis.Pipeliner), replyTo string, msg []byte, then func(redis.Pipeliner)) error {
	var replicated func() error
	var writes int
	var reply *redis.IntCmd
	durable := w.cfg.Durability.Replicas > 0
	cmds, _ := w.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		store(pl)
		replicated = w.cfg.Durability.Wait(ctx, pl)
		writes = pl.Len() // the commands whose errors are this function's
		if replyTo != "" && !durable {
			reply = pl.Publish(ctx, replyTo, msg)
		}
		if then != nil {
			then(pl)
		}
		return nil
	})
	if len(cmds) < writes {
		return errors.New("the result's round trip was not sent")
	}
	for _, c := range cmds[:writes] {
		if err := c.Err(); err != nil {
			return err
		}
	}
	if err := replicated(); err != nil {
		return err
	}
	if replyTo != "" && durable {
		reply = w.rdb.Publish(ctx, replyTo, msg)
	}
	if reply != nil && reply.Err() != nil {
		w.log.Warn("reply publish failed", "reply_to", replyTo, "err", reply.Err().Error())
	}
	return nil
}
