package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Fair admission of async jobs (internal/fairq): each tenant has at most a
// window of jobs in a pool's async queue at once; the rest wait, in order,
// until one of its own is done.
//
//	hokusai:fair:{POOL}:TENANT:admitted  sorted set: ids in the async queue (queued or running), scored by admission (Unix ms)
//	hokusai:fair:{POOL}:TENANT:held      list: ids waiting for room, oldest first
//	hokusai:fair:{POOL}:TENANT:window    string: the tenant's window, as the API last computed it
//	hokusai:fair:{POOL}:held:ID          string: a waiting job's HeldJob, until its task is enqueued
//	hokusai:fair:{POOL}:tenants          set: tenants that may have jobs waiting

// FairKeys are one tenant's admission keys in pool: admitted, held, window.
func FairKeys(pool, tenant string) [3]string {
	p := keyPrefix + "fair:{" + pool + "}:" + tenant + ":"
	return [3]string{p + "admitted", p + "held", p + "window"}
}

// HeldPrefix begins the key of each of pool's waiting jobs; HeldKey is one.
func HeldPrefix(pool string) string         { return keyPrefix + "fair:{" + pool + "}:held:" }
func HeldKey(pool, requestID string) string { return HeldPrefix(pool) + requestID }

// FairTenantsKey is the set of pool's tenants that may have jobs waiting.
func FairTenantsKey(pool string) string { return keyPrefix + "fair:{" + pool + "}:tenants" }

// HeldJob is an async predict waiting for room in its tenant's window: all
// that is needed to enqueue its task later, from any process.
type HeldJob struct {
	Payload     json.RawMessage `json:"payload"`
	RetentionMS int64           `json:"retention_ms"`
	MaxRetry    int             `json:"max_retry"`
}

// NewHeldJob is the HeldJob of p with o.
func NewHeldJob(p PredictPayload, o TaskOptions) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode predict payload: %w", err)
	}
	return json.Marshal(HeldJob{Payload: b, RetentionMS: o.Retention.Milliseconds(), MaxRetry: o.MaxRetry})
}

// Task rebuilds a held job's task on pool's async lane.
func (h HeldJob) Task(pool string) (*asynq.Task, error) {
	p, err := DecodePredict(h.Payload)
	if err != nil {
		return nil, err
	}
	return NewPredictTask(p, TaskOptions{Pool: pool, Lane: LaneAsync,
		Retention: time.Duration(h.RetentionMS) * time.Millisecond, MaxRetry: h.MaxRetry})
}
