package queue

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// AsynqVersion is the asynq release whose Redis layout and scripts this
// package is written against. The contract test fails on any other, so an
// upgrade is a reviewed change here, not a silent one.
const AsynqVersion = "v0.26.0"

// keyPrefix begins every key asynq keeps for a queue: asynq:{QUEUE}:...,
// the braces a Redis Cluster hash tag.
const keyPrefix = "asynq:{"

// Key is asynq's key for part of queue q: "pending", "active",
// "completed", "t:ID" (a task's hash), ...
func Key(q, part string) string { return keyPrefix + q + "}:" + part }

// TaskKey is the hash asynq keeps task id of queue q in: its message,
// state, and the result that ResultWriter writes and
// Inspector.GetTaskInfo reads.
func TaskKey(q, id string) string { return Key(q, "t:"+id) }

// StoreResult queues on pl the write of a task's result, where asynq's
// ResultWriter stores it, so the result can share a round trip with what
// goes with it (the reply to a waiting API process).
func StoreResult(ctx context.Context, pl redis.Pipeliner, q, id string, result []byte) *redis.IntCmd {
	return pl.HSet(ctx, TaskKey(q, id), "result", result)
}
