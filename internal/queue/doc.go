// Package queue is the one place that knows asynq's private Redis layout
// and scripts (asynq AsynqVersion). The rest of the project uses asynq's
// public API, and reaches past it only through this package:
//
//   - Enqueue and FollowUpHook: a task's enqueue script and the commands that
//     must follow it (its job record, a worker's wake-up) in one round trip,
//     with the follow-ups' errors returned, not dropped;
//   - DequeueHook: a worker takes a task from any of its queues in one script
//     call, and blocks on wake lists instead of polling when idle;
//   - MemGuard: asynq's memory-usage script cannot fail a queue read;
//   - Key, TaskKey and StoreResult: where asynq keeps a queue's lists and a
//     task's result;
//   - EnqueueFair, ReleaseFair and ReapFair: tenants' turns on a pool's
//     async lane (fair.go), writing tasks as asynq's enqueue script does;
//   - HoldersKey and Reclaim: which worker holds each active task (the
//     dequeue records it, the script that ends the task drops it), and
//     handing a dead worker's tasks back to their queue at once.
//
// contract_test.go pins the asynq version and checks each of these against a
// real asynq client, server and inspector on a real redis-server.
//
// Wake is the enqueuer's half of those wake-ups, a protocol of ours rather
// than asynq's: after work is enqueued on a pool's lane, it pushes to the
// lane's wake list (jobs.WakeKey), on which the pool's idle workers that
// consume the lane block.
//
// It imports only jobs of the project.
package queue
