// Package worker is the inference tier: an asynq server that consumes one
// pool's queues ({pool}:sync, {pool}:async, {pool}:batch, weighted sync
// first), runs models and stores results, plus its readiness, heartbeat and
// health endpoints.
//
// A worker consumes only once Redis answers and every model of its pool is
// loaded; until then /readyz says why not, and it keeps retrying. Idle workers
// block on their pool's wake lists, one per lane they consume
// (queue.DequeueHook), so sync work is picked up in about a millisecond
// without polling Redis hard.
//
// Every task passes through one middleware (metrics.go) that writes its log
// line and counts it on the worker's own Prometheus registry, served at
// /metrics beside /readyz; trace.go continues the API's trace from the task's
// traceparent when a tracer provider is configured. Batch webhooks are
// posted by a delivery pool beside the task slots, never in one
// (delivery.go), to globally reachable addresses only (webhook.go).
//
// Every worker hands back the tasks of workers whose heartbeat stopped
// (reclaim.go), within seconds of a kill -9, and fails batches whose upload
// stopped where the API could not clean up after it (batch_upload.go).
//
// worker never imports api/. It imports jobs/ and internal/ for the contract
// and plumbing it shares with the API, and worker/... for models.
package worker
