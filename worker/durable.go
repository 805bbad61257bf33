package worker

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// storeAndReply writes a result with store's commands and sends msg to the
// API process waiting on replyTo (none when empty). With durability none
// both go in one round trip; under replicas:N a WAIT follows the writes and
// the reply is sent only once the replicas hold them, so a caller is never
// answered from a result a failover could lose. The error is the writes'
// or the WAIT's (the task is then retried: rewriting a result is
// idempotent); a reply that fails only is logged, since the caller reads
// the stored result by id.
func (w *Worker) storeAndReply(ctx context.Context, store func(redis.Pipeliner), replyTo string, msg []byte) error {
	var replicated func() error
	durable := w.cfg.Durability.Replicas > 0
	cmds, err := w.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		store(pl)
		replicated = w.cfg.Durability.Wait(ctx, pl)
		if replyTo != "" && !durable {
			pl.Publish(ctx, replyTo, msg)
		}
		return nil
	})
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && c.Name() != "publish" {
			return cerr
		}
	}
	if werr := replicated(); werr != nil {
		return werr
	}
	if replyTo != "" && durable {
		err = w.rdb.Publish(ctx, replyTo, msg).Err()
	}
	if err != nil {
		w.log.Warn("reply publish failed", "reply_to", replyTo, "err", err.Error())
	}
	return nil
}
