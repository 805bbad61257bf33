// Command hokusai-worker is the inference tier: it loads its pool's models,
// consumes the pool's queues once ready, and serves /livez, /readyz and
// /metrics. Traces go to OTEL_EXPORTER_OTLP_ENDPOINT when it is set.
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
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/cpuclass"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/service"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
	"github.com/hokusai-ai/inference-queue/worker/hub"
	"github.com/hokusai-ai/inference-queue/worker/objstore"
	"github.com/hokusai-ai/inference-queue/worker/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hokusai-worker:", err)
		os.Exit(1)
	}
}

// newSources wires the Hub client, its disk cache and the HF token provider
// from the environment (HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE,
// HF_TOKEN, HUGGINGFACE_API_KEY, HF_TOKEN_FILE, HF_TOKEN_SECRET_ARN).
func newSources(ctx context.Context, getenv func(string) string, modelsDir string, env *service.Env) (*worker.Sources, error) {
	token, err := secret.FromEnv(ctx, getenv, secret.Options{RefreshEvery: env.Duration("HF_TOKEN_REFRESH", 0)})
	if err != nil {
		return nil, err
	}
	opts := hub.OptionsFromEnv(getenv)
	opts.Token = secret.HubToken(token)
	hc, err := hub.New(opts)
	if err != nil {
		return nil, err
	}
	return worker.NewSources(worker.SourcesConfig{Base: modelsDir, Hub: hc, Token: token,
		CacheBytes: env.Int("HOKUSAI_MODEL_CACHE_BYTES", 0)}), env.Err()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "healthcheck" {
		return service.Healthcheck(ctx, args[2:], "http://127.0.0.1:8081/readyz", stdout)
	}
	env := service.NewEnv(getenv)
	cfg := worker.Config{
		Pool:                     env.String("HOKUSAI_POOL", "default"),
		HealthAddr:               env.String("HOKUSAI_HEALTH_ADDR", ":8081"),
		Concurrency:              int(env.Int("HOKUSAI_CONCURRENCY", 0)),
		ShutdownTimeout:          env.Duration("HOKUSAI_SHUTDOWN_TIMEOUT", 0),
		TaskRetryDelay:           env.Duration("HOKUSAI_TASK_RETRY_DELAY", 0),
		ReclaimAfter:             env.Duration("HOKUSAI_RECLAIM_AFTER", 0),
		WebhookAllowPrivate:      env.Bool("HOKUSAI_WEBHOOK_ALLOW_PRIVATE", false),
		WebhookConcurrency:       int(env.Int("HOKUSAI_WEBHOOK_CONCURRENCY", 0)),
		WebhookTenantConcurrency: int(env.Int("HOKUSAI_WEBHOOK_TENANT_CONCURRENCY", 0)),
		WebhookTimeout:           env.Duration("HOKUSAI_WEBHOOK_TIMEOUT", 0),
		RecheckInterval:          env.Duration("HOKUSAI_TOKEN_RECHECK", 0),
		Usage: usage.Config{Days: int(env.Int("HOKUSAI_USAGE_DAYS", 0)),
			FlushInterval: env.Duration("HOKUSAI_USAGE_FLUSH_INTERVAL", 0)},
		S3PartBytes: int(env.Int("HOKUSAI_S3_PART_BYTES", 0)),
	}
	fs := flag.NewFlagSet("hokusai-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Pool, "pool", cfg.Pool, "pool whose queues and models to serve (HOKUSAI_POOL)")
	fs.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, "address of /livez and /readyz (HOKUSAI_HEALTH_ADDR)")
	common := service.AddFlags(fs, env)
	modelsDir := fs.String("models-dir", env.String("HOKUSAI_MODELS_DIR", "."), "base folder for relative file:// sources (HOKUSAI_MODELS_DIR)")
	lanes := fs.String("lanes", env.String("HOKUSAI_LANES", "sync,async,batch"), "lanes of the pool to consume (HOKUSAI_LANES)")
	class := fs.String("cpu-class", env.String("HOKUSAI_CPU_CLASS", ""), "normal, or idle to run only on cycles other processes leave (HOKUSAI_CPU_CLASS; default idle for a batch-only worker)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	durability, err := queue.ParseDurability(getenv("HOKUSAI_ACCEPT_DURABILITY"))
	if err != nil {
		return fmt.Errorf("HOKUSAI_ACCEPT_DURABILITY: %w", err)
	}
	cfg.Durability = durability
	for _, name := range strings.Split(*lanes, ",") {
		lane, err := jobs.ParseLane(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		cfg.Lanes = append(cfg.Lanes, lane)
	}
	explicit := *class != ""
	if !explicit {
		*class = cpuclass.Normal
		if cfg.BatchOnly() {
			*class = cpuclass.Idle // batch yields the cores to sync work beside it
		}
	}
	if _, err := cpuclass.Parse(*class); err != nil {
		return err
	}
	classErr := cpuclass.Set(*class)
	if classErr != nil && explicit {
		return classErr
	}
	sources, err := newSources(ctx, getenv, *modelsDir, env)
	if err != nil {
		return err
	}
	if cfg.S3Allow, err = s3url.ParseAllow(getenv("HOKUSAI_S3_ALLOW")); err != nil {
		return fmt.Errorf("HOKUSAI_S3_ALLOW: %w", err)
	}
	if cfg.S3, err = objstore.FromEnv(ctx, getenv); err != nil {
		return err
	}
	proc, err := common.Start(ctx, "hokusai-worker", getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close()
	log := proc.Log
	if classErr != nil {
		log.Warn("cpu class not set; running at normal priority", "class", *class, "err", classErr.Error())
	} else {
		log.Info("cpu class", "class", *class, "lanes", cfg.Lanes)
	}
	cfg.Recheck = sources.Recheck
	cfg.TracerProvider = proc.Tracer
	w, err := worker.New(cfg, proc.Redis, sources.Load, log)
	if err != nil {
		return err
	}
	if err := w.Register(sources); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HealthAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HealthAddr, err)
	}
	log.Info("health listening", "addr", ln.Addr().String())
	handler := w.HealthHandler()
	if getenv("HOKUSAI_PPROF") == "1" {
		// Profiles on the health port, for load tests; off by default.
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		handler = mux
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err.Error())
		}
	}()
	defer hs.Close()
	return w.Run(ctx)
}
