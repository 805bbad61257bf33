// Command hokusai-api is the API tier: it authenticates, validates and
// enqueues predict requests, and never holds the HuggingFace token. It also
// serves /metrics, and /ops (the asynq dashboard and the workers page) when
// HOKUSAI_ADMIN_TOKEN is set. Traces go to OTEL_EXPORTER_OTLP_ENDPOINT when
// it is set.
//
//	hokusai-api [--listen :8080] [--log-format json|text]
//	hokusai-api healthcheck [--url http://127.0.0.1:8080/ready]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/service"
	"github.com/hokusai-ai/inference-queue/internal/usage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hokusai-api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "healthcheck" {
		return service.Healthcheck(ctx, args[2:], "http://127.0.0.1:8080/ready", stdout)
	}
	env := service.NewEnv(getenv)
	cfg := api.Config{
		Listen:                env.String("HOKUSAI_LISTEN", ":8080"),
		SyncTimeout:           env.Duration("HOKUSAI_SYNC_TIMEOUT", 0),
		ResultTTL:             env.Duration("HOKUSAI_RESULT_TTL", 0),
		RetentionSync:         env.Duration("HOKUSAI_RETENTION_SYNC", 0),
		RetentionAsync:        env.Duration("HOKUSAI_RETENTION_ASYNC", 0),
		RetentionBatch:        env.Duration("HOKUSAI_RETENTION_BATCH", 0),
		RedisReserve:          env.Int("HOKUSAI_REDIS_RESERVE", 0),
		MaxBodyBytes:          env.Int("HOKUSAI_MAX_BODY_BYTES", 0),
		BodyTimeout:           env.Duration("HOKUSAI_BODY_TIMEOUT", 0),
		GzipMaxRatio:          env.Int("HOKUSAI_GZIP_MAX_RATIO", 0),
		PredictGroupRows:      int(env.Int("HOKUSAI_PREDICT_GROUP_ROWS", 0)),
		PredictGroupBytes:     int(env.Int("HOKUSAI_PREDICT_GROUP_BYTES", 0)),
		DrainMaxBytes:         env.Int("HOKUSAI_DRAIN_MAX_BYTES", 0),
		DrainTimeout:          env.Duration("HOKUSAI_DRAIN_TIMEOUT", 0),
		AdminToken:            env.String("HOKUSAI_ADMIN_TOKEN", ""),
		AdminWriteToken:       env.String("HOKUSAI_ADMIN_WRITE_TOKEN", ""),
		RateLimit:             env.String("HOKUSAI_RATE_LIMIT", ""),
		TenantRateLimit:       env.String("HOKUSAI_TENANT_RATE_LIMIT", ""),
		RateLimitFail:         env.String("HOKUSAI_RATE_LIMIT_FAIL", ""),
		BatchRowLimit:         env.String("HOKUSAI_BATCH_ROW_LIMIT", ""),
		TenantBatchRowLimit:   env.String("HOKUSAI_TENANT_BATCH_ROW_LIMIT", ""),
		TenantSyncConcurrency: int(env.Int("HOKUSAI_TENANT_SYNC_CONCURRENCY", 0)),
		TenantSyncQueue:       int(env.Int("HOKUSAI_TENANT_SYNC_QUEUE", 0)),
		Batch: api.BatchConfig{
			MaxBytes:      env.Int("HOKUSAI_BATCH_MAX_BYTES", 0),
			MaxRows:       int(env.Int("HOKUSAI_BATCH_MAX_ROWS", 0)),
			ChunkRows:     int(env.Int("HOKUSAI_BATCH_CHUNK_ROWS", 0)),
			MinUploadRate: env.Int("HOKUSAI_BATCH_MIN_UPLOAD_RATE", 0),
			PaceBurst:     env.Duration("HOKUSAI_BATCH_PACE_BURST", 0),
			PacePause:     env.Duration("HOKUSAI_BATCH_PACE_PAUSE", 0),
		},
		Usage: usage.Config{Days: int(env.Int("HOKUSAI_USAGE_DAYS", 0)),
			FlushInterval: env.Duration("HOKUSAI_USAGE_FLUSH_INTERVAL", 0)},
	}
	fs := flag.NewFlagSet("hokusai-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve on (HOKUSAI_LISTEN)")
	common := service.AddFlags(fs, env)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	var err error
	if cfg.Durability, err = queue.ParseDurability(getenv("HOKUSAI_ACCEPT_DURABILITY")); err != nil {
		return fmt.Errorf("HOKUSAI_ACCEPT_DURABILITY: %w", err)
	}
	if cfg.S3Allow, err = s3url.ParseAllow(getenv("HOKUSAI_S3_ALLOW")); err != nil {
		return fmt.Errorf("HOKUSAI_S3_ALLOW: %w", err)
	}
	proc, err := common.Start(ctx, "hokusai-api", getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close()
	cfg.TracerProvider = proc.Tracer
	srv, err := api.NewServer(cfg, proc.Redis, proc.Log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return srv.Run(ctx, ln)
}
