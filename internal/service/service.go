package service

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/redisconn"
)

// Flags are the settings every server binary takes.
type Flags struct {
	redisURL, logFormat, logLevel *string
}

// AddFlags registers the shared flags on fs, defaulting from env.
func AddFlags(fs *flag.FlagSet, env *Env) *Flags {
	return &Flags{
		redisURL:  fs.String("redis-url", env.String("REDIS_URL", redisconn.DefaultURL), "Redis URL (REDIS_URL)"),
		logFormat: fs.String("log-format", env.String("HOKUSAI_LOG_FORMAT", "json"), "json or text (HOKUSAI_LOG_FORMAT)"),
		logLevel:  fs.String("log-level", env.String("HOKUSAI_LOG_LEVEL", "info"), "debug, info, warn or error (HOKUSAI_LOG_LEVEL)"),
	}
}

// Process is a started server process's shared parts.
type Process struct {
	Log    *slog.Logger
	Redis  redis.UniversalClient
	Tracer trace.TracerProvider // nil when tracing is off
	stop   func()
}

// Start builds the logger (writing to stdout), the Redis client
// (REDIS_PASSWORD overrides the URL's) and tracing for service name.
func (f *Flags) Start(ctx context.Context, name string, getenv func(string) string, stdout io.Writer) (*Process, error) {
	log, err := NewLogger(stdout, *f.logFormat, *f.logLevel)
	if err != nil {
		return nil, err
	}
	rdb, err := redisconn.Open(*f.redisURL, getenv("REDIS_PASSWORD"))
	if err != nil {
		return nil, err
	}
	tp, stopTracing, err := SetupTracing(ctx, name, getenv, log)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &Process{Log: log, Redis: rdb, Tracer: tp, stop: func() { stopTracing(); _ = rdb.Close() }}, nil
}

// Close flushes traces and closes the Redis client.
func (p *Process) Close() { p.stop() }
