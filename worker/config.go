package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/objstore"
)

// Config configures a worker. Zero fields take the defaults WithDefaults names.
type Config struct {
	// Pool is the pool whose queues and models this worker serves.
	// Env HOKUSAI_POOL, default "default".
	Pool string
	// Lanes are the lanes of the pool this worker consumes. Env HOKUSAI_LANES
	// (comma-separated), default all three. A batch-only worker run at a low
	// CPU priority keeps batches from slowing partners' sync calls.
	Lanes []jobs.Lane
	// HealthAddr is where /livez, /readyz and /metrics listen.
	// Env HOKUSAI_HEALTH_ADDR, default ":8081".
	HealthAddr string
	// Concurrency is how many tasks run at once. Env HOKUSAI_CONCURRENCY,
	// default 8 per core (handlers mostly wait on Redis round trips).
	Concurrency int
	// ShutdownTimeout bounds the drain on SIGTERM; tasks still running then
	// go back to their queue. Env HOKUSAI_SHUTDOWN_TIMEOUT, default 10s.
	ShutdownTimeout time.Duration
	// PollInterval is asynq's TaskCheckInterval: the pause between dequeue
	// rounds after an empty round. Idle workers block on the wake list for
	// WakeTimeout before that, so this can be short. Default 200µs.
	PollInterval time.Duration
	// WakeTimeout is how long an idle worker blocks on the wake list before
	// polling anyway (for retried and scheduled tasks). Default 1s.
	WakeTimeout time.Duration
	// RetryInterval is the first pause between readiness attempts; it doubles
	// up to MaxRetryInterval. Defaults 1s and 30s.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// TaskRetryDelay is the pause before a failed task's first retry; it
	// doubles per retry up to 64 times itself (1s: retries 1s, 2s, ... then
	// every 64s, so a batch chunk's ten retries end within about six
	// minutes). Env HOKUSAI_TASK_RETRY_DELAY, default 1s.
	TaskRetryDelay time.Duration
	// ReclaimAfter is how long a worker's heartbeat may be missing before
	// the other workers of its pool hand the tasks it held back to their
	// queues (see reclaim.go). Env HOKUSAI_RECLAIM_AFTER, default 5s, at
	// least HeartbeatTTL in effect (a heartbeat key outlives its last
	// renewal that long).
	ReclaimAfter time.Duration
	// WebhookAllowPrivate lets batch webhooks reach loopback, private and
	// link-local addresses; off, they go to public addresses only. For
	// development and tests. Env HOKUSAI_WEBHOOK_ALLOW_PRIVATE=1.
	WebhookAllowPrivate bool
	// WebhookConcurrency bounds the batch webhook attempts this worker makes
	// at once. They run on goroutines of their own, never in a task slot
	// (see delivery.go); only workers that consume the batch lane deliver.
	// Env HOKUSAI_WEBHOOK_CONCURRENCY, default 32.
	WebhookConcurrency int
	// WebhookTenantConcurrency bounds one tenant's share of those attempts,
	// so a tenant whose endpoint hangs leaves slots to the others. Env
	// HOKUSAI_WEBHOOK_TENANT_CONCURRENCY, default 4 (or WebhookConcurrency
	// when that is less).
	WebhookTenantConcurrency int
	// WebhookTimeout bounds one webhook attempt, from dialing to the
	// answer's status. Env HOKUSAI_WEBHOOK_TIMEOUT, default 10s.
	WebhookTimeout time.Duration
	// Recheck, when set, is asked every RecheckInterval while the worker
	// serves; reasons it returns (a revoked token, say) stop consumption until
	// a later check returns none. Default interval 1m.
	Recheck         func(ctx context.Context) []string
	RecheckInterval time.Duration
	// S3 reads S3 batches' inputs and writes their outputs (the binary
	// builds it from the standard AWS chain); nil fails the S3 batches
	// this worker is given, saying so.
	S3 *objstore.Store
	// S3Allow is where S3 batches may read and write, for every tenant, on
	// top of each tenant's own entries. Env HOKUSAI_S3_ALLOW
	// (comma-separated s3://bucket[/prefix]), default none.
	S3Allow s3url.AllowList
	// S3PartBytes is the size an S3 batch's output is uploaded in, a part
	// at a time; it bounds the output a worker holds per batch. S3 takes
	// no part under 5 MiB but the last: smaller values are for
	// S3-compatible stores that take them, and tests. Env
	// HOKUSAI_S3_PART_BYTES, default 8 MiB (10,000 parts: 80 GB of output).
	S3PartBytes int
	// ID names this worker in heartbeats. Default host-pid-random.
	ID string
	// TracerProvider receives the worker's spans (queue wait, task,
	// inference), continuing the API's trace from the task's traceparent.
	// Nil turns tracing off at no cost.
	TracerProvider trace.TracerProvider
	// Usage says how long usage is kept and how often this worker writes
	// the rows and compute it counted (see usage.Config:
	// HOKUSAI_USAGE_DAYS, HOKUSAI_USAGE_FLUSH_INTERVAL).
	Usage usage.Config
	// Durability is what storing a predict's result means before its job
	// reads succeeded and its sync caller is answered: "none", on the
	// master; "replicas:N", on N replicas too (WAIT), or the task fails
	// and is retried. Env HOKUSAI_ACCEPT_DURABILITY, default none (the
	// API's setting, which should match).
	Durability queue.Durability
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Pool == "" {
		c.Pool = jobs.DefaultPool
	}
	if len(c.Lanes) == 0 {
		c.Lanes = jobs.Lanes
	}
	if c.HealthAddr == "" {
		c.HealthAddr = ":8081"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8 * runtime.NumCPU()
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Microsecond
	}
	if c.WakeTimeout == 0 {
		c.WakeTimeout = time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = 30 * time.Second
	}
	if c.TaskRetryDelay == 0 {
		c.TaskRetryDelay = time.Second
	}
	if c.ReclaimAfter == 0 {
		c.ReclaimAfter = 5 * time.Second
	}
	if c.WebhookConcurrency == 0 {
		c.WebhookConcurrency = 32
	}
	if c.WebhookTenantConcurrency == 0 {
		c.WebhookTenantConcurrency = min(4, c.WebhookConcurrency)
	}
	if c.WebhookTimeout == 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.S3PartBytes == 0 {
		c.S3PartBytes = 8 << 20
	}
	if c.RecheckInterval == 0 {
		c.RecheckInterval = time.Minute
	}
	c.Usage = c.Usage.WithDefaults()
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	return c
}

// BatchOnly reports whether the worker consumes the batch lane alone: it
// then runs in the idle CPU class by default and, between blocks of rows,
// offers its core to other processes (cpuclass.Yield) instead of pausing.
func (c Config) BatchOnly() bool { return slices.Equal(c.Lanes, []jobs.Lane{jobs.LaneBatch}) }

// retryDelay is asynq's RetryDelayFunc: TaskRetryDelay doubled per retry
// so far, up to 64 times it. (asynq's default grows as n^4 seconds, so a
// task's tenth retry would come hours after the first failure.)
func (c Config) retryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	return c.TaskRetryDelay << min(max(n, 0), 6)
}

// Validate reports what is wrong with c, as sentences.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency must be at least 1, not %d", c.Concurrency))
	}
	if c.WakeTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("wake timeout %s is under 10ms and would poll Redis hard", c.WakeTimeout))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, errors.New("poll interval must be positive"))
	}
	if c.TaskRetryDelay < 0 {
		errs = append(errs, fmt.Errorf("task retry delay %s is negative", c.TaskRetryDelay))
	}
	if c.ReclaimAfter < 2*jobs.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("reclaim after %s is under two heartbeats (%s): live workers would lose their tasks", c.ReclaimAfter, 2*jobs.HeartbeatInterval))
	}
	if c.WebhookConcurrency < 1 {
		errs = append(errs, fmt.Errorf("webhook concurrency must be at least 1, not %d", c.WebhookConcurrency))
	}
	if c.WebhookTenantConcurrency < 1 || c.WebhookTenantConcurrency > c.WebhookConcurrency {
		errs = append(errs, fmt.Errorf("webhook tenant concurrency must be between 1 and the webhook concurrency (%d), not %d",
			c.WebhookConcurrency, c.WebhookTenantConcurrency))
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, fmt.Errorf("webhook timeout must be positive, not %s", c.WebhookTimeout))
	}
	if err := c.Usage.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.S3PartBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("S3 part size %d bytes is under 64 KiB", c.S3PartBytes))
	}
	return errors.Join(errs...)
}
