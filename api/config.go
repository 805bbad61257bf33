package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/ratelimit"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Config configures the API. Zero fields take the defaults WithDefaults names.
type Config struct {
	// Listen is the address to serve on. Env HOKUSAI_LISTEN, default ":8080".
	Listen string
	// SyncTimeout is how long a sync predict waits before answering 504 with
	// a status_url. Env HOKUSAI_SYNC_TIMEOUT, default 30s. `Prefer: wait=N`
	// lowers it per request.
	SyncTimeout time.Duration
	// ResultTTL is how long results and job records live, on the lanes
	// that do not set their own below. Env HOKUSAI_RESULT_TTL, default 24h.
	ResultTTL time.Duration
	// RetentionSync is how long a sync predict's result and job record
	// live after it finishes: its caller has the answer already, or was
	// told (504) to poll for it. Env HOKUSAI_RETENTION_SYNC, default 1h.
	RetentionSync time.Duration
	// RetentionAsync is how long an async job's result and record live.
	// Env HOKUSAI_RETENTION_ASYNC, default ResultTTL.
	RetentionAsync time.Duration
	// RetentionBatch is how long a batch's rows, results and record live.
	// Env HOKUSAI_RETENTION_BATCH, default ResultTTL.
	RetentionBatch time.Duration
	// RedisReserve is the free Redis memory, in bytes under maxmemory,
	// below which new work is refused (503 queue_full), so the results of
	// work already accepted still fit. Env HOKUSAI_REDIS_RESERVE, default
	// a tenth of maxmemory; no maxmemory, no refusal.
	RedisReserve int64
	// Durability is what a 202 (or the start of a sync wait) promises:
	// "none", the task is in the master's memory; "replicas:N", N replicas
	// acknowledged it too (WAIT), or the answer is 503 queue_unavailable.
	// Env HOKUSAI_ACCEPT_DURABILITY, default none.
	Durability queue.Durability
	// MaxBodyBytes caps predict and job bodies. Env HOKUSAI_MAX_BODY_BYTES,
	// default 1 MiB.
	MaxBodyBytes int64
	// BodyTimeout is how long a request's body may take to arrive, from the
	// end of its headers; past it the answer is 408 request_timeout and the
	// connection is closed, so a client that trickles its body, or stalls,
	// cannot hold a connection. Batch uploads get more (see
	// BatchConfig.MinUploadRate). Env HOKUSAI_BODY_TIMEOUT, default 30s.
	BodyTimeout time.Duration
	// GzipMaxRatio bounds how far a gzip body (Content-Encoding: gzip) may
	// expand, past its first MiB: more is refused with 413, so a small
	// upload cannot make the API read as much as its largest limit allows.
	// Env HOKUSAI_GZIP_MAX_RATIO, default 200 (Apache's
	// DeflateInflateRatioLimit; real CSV and JSON compress 5- to 20-fold).
	GzipMaxRatio int64
	// PredictGroupRows bounds the rows of a predict group: sync predicts of
	// one model and options that arrive while this process has earlier
	// ones of theirs in the queue are sent together, as one task, up to
	// this many rows (a list counts its rows). 1 sends every predict alone.
	// Env HOKUSAI_PREDICT_GROUP_ROWS, default 64.
	PredictGroupRows int
	// PredictGroupBytes bounds a predict group's inputs and options, in
	// bytes as sent. Env HOKUSAI_PREDICT_GROUP_BYTES, default 256 KiB.
	PredictGroupBytes int
	// DrainMaxBytes bounds how much of a body its handler left unread (a 413,
	// an error found before the body mattered) is read and thrown away after
	// an authenticated request's answer, so that a client that writes its
	// whole body before reading (Python's http.client, urllib, requests)
	// reads the answer instead of a connection reset. A longer rest closes
	// the connection. Env HOKUSAI_DRAIN_MAX_BYTES, default 64 MiB.
	DrainMaxBytes int64
	// DrainTimeout bounds the time the answer and that drain may take; past
	// it the connection is closed. Env HOKUSAI_DRAIN_TIMEOUT, default 10s.
	DrainTimeout time.Duration
	// RefreshInterval is how often the registry, published model info and
	// worker heartbeats are re-read into memory. Default 250ms.
	RefreshInterval time.Duration
	// KeyCacheTTL is how long an API key lookup is cached in memory; a revoked
	// key stops working within it. Default 1s.
	KeyCacheTTL time.Duration
	// Instance names this process's reply channel. Default a random id.
	Instance string
	// AdminToken guards /ops (the asynq dashboard, read-only, and the workers
	// page): the Basic auth password or a Bearer token. Env
	// HOKUSAI_ADMIN_TOKEN; empty turns /ops off (404).
	AdminToken string
	// AdminWriteToken is an admin credential that may also act in the
	// dashboard (retry, delete, pause). Env HOKUSAI_ADMIN_WRITE_TOKEN; empty:
	// the dashboard is read-only for everyone.
	AdminWriteToken string
	// TracerProvider receives the API's spans; nil turns tracing off at no
	// cost (see internal/service.SetupTracing, driven by OTEL_EXPORTER_OTLP_ENDPOINT).
	TracerProvider trace.TracerProvider
	// Batch holds the batch limits and chunk size (see BatchConfig).
	Batch BatchConfig
	// S3Allow is where S3 batches (input_url, output_url) may read and
	// write, for every tenant, on top of each tenant's own entries
	// (hokusai s3 allow); anything else is 403 forbidden. Env
	// HOKUSAI_S3_ALLOW (comma-separated s3://bucket[/prefix]), default none.
	S3Allow s3url.AllowList
	// RateLimit is each API key's quota, unless the key has its own (hokusai
	// keys create --limit, hokusai keys limits): "N/s", "N/m", "N/h", "N/d"
	// or "unlimited". Every /api/v1 request costs 1, a list of rows one per
	// row. Env HOKUSAI_RATE_LIMIT, default "1000/h", the old API's.
	RateLimit string
	// TenantRateLimit is each tenant's quota over all its keys, unless the
	// tenant has its own. Env HOKUSAI_TENANT_RATE_LIMIT, default
	// "unlimited".
	TenantRateLimit string
	// RateLimitFail says what happens when Redis cannot count a request:
	// "open" lets it through, "closed" answers 503 queue_unavailable. Either
	// way it is counted in hokusai_api_rate_limit_errors_total. Env
	// HOKUSAI_RATE_LIMIT_FAIL, default "open".
	RateLimitFail string
	// BatchRowLimit is each API key's quota of batch rows, unless the key
	// has its own (hokusai keys limits --batch-rows), in the forms of
	// RateLimit, e.g. "1000000/d". Batch rows count only here, each chunk
	// as it is stored, and a submission is one request against RateLimit.
	// A file that would pass the quota is refused (429) and nothing of it
	// is scored; the rows stored before the refusal stay charged. Env
	// HOKUSAI_BATCH_ROW_LIMIT, default "unlimited".
	BatchRowLimit string
	// TenantBatchRowLimit is each tenant's quota of batch rows over all
	// its keys, unless the tenant has its own. Env
	// HOKUSAI_TENANT_BATCH_ROW_LIMIT, default "unlimited".
	TenantBatchRowLimit string
	// TenantSyncConcurrency caps one tenant's sync predicts queued or
	// running at once from this API process; more wait in the process for
	// a slot, in arrival order, within their sync wait. Env
	// HOKUSAI_TENANT_SYNC_CONCURRENCY, default 32.
	TenantSyncConcurrency int
	// TenantSyncQueue caps one tenant's sync predicts waiting for a slot
	// in this process; past it, or when its wait runs out first, a predict
	// is answered 429 rate_limited without being queued. Env
	// HOKUSAI_TENANT_SYNC_QUEUE, default 1024.
	TenantSyncQueue int
	// Usage says how long usage is kept and how often this process writes
	// what it counted (see usage.Config: HOKUSAI_USAGE_DAYS,
	// HOKUSAI_USAGE_FLUSH_INTERVAL).
	Usage usage.Config
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 30 * time.Second
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = 24 * time.Hour
	}
	if c.RetentionSync == 0 {
		c.RetentionSync = min(time.Hour, c.ResultTTL)
	}
	if c.RetentionAsync == 0 {
		c.RetentionAsync = c.ResultTTL
	}
	if c.RetentionBatch == 0 {
		c.RetentionBatch = c.ResultTTL
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = 30 * time.Second
	}
	if c.GzipMaxRatio == 0 {
		c.GzipMaxRatio = 200
	}
	if c.PredictGroupRows == 0 {
		c.PredictGroupRows = 64
	}
	if c.PredictGroupBytes == 0 {
		c.PredictGroupBytes = 256 << 10
	}
	if c.DrainMaxBytes == 0 {
		c.DrainMaxBytes = 64 << 20
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 250 * time.Millisecond
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = time.Second
	}
	if c.RateLimit == "" {
		c.RateLimit = "1000/h"
	}
	if c.TenantRateLimit == "" {
		c.TenantRateLimit = "unlimited"
	}
	if c.TenantSyncConcurrency == 0 {
		c.TenantSyncConcurrency = 32
	}
	if c.TenantSyncQueue == 0 {
		c.TenantSyncQueue = 1024
	}
	if c.BatchRowLimit == "" {
		c.BatchRowLimit = "unlimited"
	}
	if c.TenantBatchRowLimit == "" {
		c.TenantBatchRowLimit = "unlimited"
	}
	if c.RateLimitFail == "" {
		c.RateLimitFail = "open"
	}
	c.Batch = c.Batch.withDefaults()
	c.Usage = c.Usage.WithDefaults()
	if c.Instance == "" {
		c.Instance = uuid.NewString()
	}
	return c
}

// Validate reports what is wrong with c, as sentences.
func (c Config) Validate() error {
	var errs []error
	if c.SyncTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("sync timeout %s is under 10ms", c.SyncTimeout))
	}
	for _, ttl := range []time.Duration{c.ResultTTL, c.RetentionSync, c.RetentionAsync, c.RetentionBatch} {
		if ttl < time.Minute {
			errs = append(errs, fmt.Errorf("result retention %s is under a minute; callers need time to read results", ttl))
		}
	}
	if c.RedisReserve < 0 {
		errs = append(errs, fmt.Errorf("redis reserve %d bytes is negative", c.RedisReserve))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("body limit %d bytes is under 1 KiB", c.MaxBodyBytes))
	}
	if c.BodyTimeout < 0 {
		errs = append(errs, fmt.Errorf("body timeout %s is negative", c.BodyTimeout))
	}
	if c.GzipMaxRatio < 1 {
		errs = append(errs, fmt.Errorf("gzip ratio %d is under 1", c.GzipMaxRatio))
	}
	if c.PredictGroupRows < 1 || c.PredictGroupRows > 1024 {
		errs = append(errs, fmt.Errorf("predict group rows %d is not between 1 and 1024", c.PredictGroupRows))
	}
	if c.PredictGroupBytes < 1024 || c.PredictGroupBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("predict group bytes %d is not between 1 KiB and 16 MiB", c.PredictGroupBytes))
	}
	if c.DrainMaxBytes < 0 || c.DrainTimeout < 0 {
		errs = append(errs, errors.New("the drain bounds must not be negative"))
	}
	if c.RefreshInterval <= 0 || c.RefreshInterval > 2*time.Second {
		errs = append(errs, errors.New("refresh interval must be between 0 and 2s so 503s follow heartbeats closely"))
	}
	if c.AdminWriteToken != "" && c.AdminToken == "" {
		errs = append(errs, errors.New("an admin write token needs an admin token too; /ops stays off without HOKUSAI_ADMIN_TOKEN"))
	}
	if c.AdminWriteToken != "" && c.AdminWriteToken == c.AdminToken {
		errs = append(errs, errors.New("the admin write token must differ from the admin token, or every admin could write"))
	}
	if err := c.Batch.validate(); err != nil {
		errs = append(errs, err)
	}
	for _, l := range []string{c.RateLimit, c.TenantRateLimit, c.BatchRowLimit, c.TenantBatchRowLimit} {
		if _, err := ratelimit.ParseLimit(l); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TenantSyncConcurrency < 1 || c.TenantSyncQueue < 0 {
		errs = append(errs, errors.New("a tenant's sync concurrency must be at least 1, and its queue not negative"))
	}
	if c.RateLimitFail != "open" && c.RateLimitFail != "closed" {
		errs = append(errs, fmt.Errorf("rate limit failure mode %q is neither open nor closed", c.RateLimitFail))
	}
	if err := c.Usage.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// retention is how long work of lane is kept after it finishes.
func (c Config) retention(lane jobs.Lane) time.Duration {
	switch lane {
	case jobs.LaneSync:
		return c.RetentionSync
	case jobs.LaneBatch:
		return c.RetentionBatch
	}
	return c.RetentionAsync
}
