// Command hokusai-worker is the inference tier: it loads its pool's models,
// consumes the pool's queues once ready, and serves /livez, /readyz.
//
//	hokusai-worker [--pool default] [--health-addr :8081] [--log-format json|text]
//	hokusai-worker healthcheck [--url http://127.0.0.1:8081/readyz]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/envconf"
	"github.com/hokusai-ai/inference-queue/internal/logging"
	"github.com/hokusai-ai/inference-queue/internal/probe"
	"github.com/hokusai-ai/inference-queue/internal/redisconn"
	"github.com/hokusai-ai/inference-queue/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hokusai-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "healthcheck" {
		return probe.Run(ctx, args[2:], "http://127.0.0.1:8081/readyz", stdout)
	}
	env := envconf.New(getenv)
	cfg := worker.Config{
		Pool:            env.String("HOKUSAI_POOL", "default"),
		HealthAddr:      env.String("HOKUSAI_HEALTH_ADDR", ":8081"),
		Concurrency:     int(env.Int("HOKUSAI_CONCURRENCY", 0)),
		ShutdownTimeout: env.Duration("HOKUSAI_SHUTDOWN_TIMEOUT", 0),
	}
	fs := flag.NewFlagSet("hokusai-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Pool, "pool", cfg.Pool, "pool whose queues and models to serve (HOKUSAI_POOL)")
	fs.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, "address of /livez and /readyz (HOKUSAI_HEALTH_ADDR)")
	redisURL := fs.String("redis-url", env.String("REDIS_URL", redisconn.DefaultURL), "Redis URL (REDIS_URL)")
	modelsDir := fs.String("models-dir", env.String("HOKUSAI_MODELS_DIR", "."), "base folder for relative file:// sources (HOKUSAI_MODELS_DIR)")
	logFormat := fs.String("log-format", env.String("HOKUSAI_LOG_FORMAT", "json"), "json or text (HOKUSAI_LOG_FORMAT)")
	logLevel := fs.String("log-level", env.String("HOKUSAI_LOG_LEVEL", "info"), "debug, info, warn or error (HOKUSAI_LOG_LEVEL)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	log, err := logging.New(stdout, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	rdb, err := redisconn.Open(*redisURL, getenv("REDIS_PASSWORD"))
	if err != nil {
		return err
	}
	defer rdb.Close()
	w, err := worker.New(cfg, rdb, worker.LocalLoader(*modelsDir), log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HealthAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HealthAddr, err)
	}
	log.Info("health listening", "addr", ln.Addr().String())
	hs := &http.Server{Handler: w.HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err.Error())
		}
	}()
	defer hs.Close()
	return w.Run(ctx)
}
