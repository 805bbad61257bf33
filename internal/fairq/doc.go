// Package fairq shares a pool's async lane fairly between tenants. Each
// tenant has at most a window of jobs in the async queue at once (queued or
// running); the rest wait in the tenant's own list, in order, and the next
// one joins the queue when one of the tenant's own is done. The queue is
// served in order, so tenants with work waiting take turns, each in
// proportion to its window: the API sizes windows by the workers' task
// slots times the tenant's weight.
//
// A waiting job is kept whole in Redis (jobs.HeldJob) until its task is
// enqueued, so accepted work survives any process dying between the two;
// Reap, run by every worker, repairs what such a death leaves: an admitted
// job whose task was never enqueued is enqueued again (the task id makes
// it once), and one whose task ended without a release frees its place.
// The layout is in jobs/fair.go; every script touches one pool's keys,
// which share a Redis Cluster hash slot, except Reap's look at asynq's task
// hashes.
//
// It imports jobs, internal/queue, asynq and go-redis; never api or worker.
package fairq
