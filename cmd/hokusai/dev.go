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
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/redisconn"
	"github.com/hokusai-ai/inference-queue/internal/redisproc"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/service"
	"github.com/hokusai-ai/inference-queue/worker"
	"github.com/hokusai-ai/inference-queue/worker/objstore"
)

// demoModelDir is the demo model, relative to the repository root.
const demoModelDir = "models/sales-lead-scoring"

// runDev runs the whole stack in one process: a private redis-server unless
// REDIS_URL is set, the demo registry, a demo key, a worker and the API.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "API address")
	state := fs.String("state-dir", ".hokusai", "where the private redis-server keeps its files")
	models := fs.String("models", demoModelDir, "demo model folder (model 21)")
	logFormat := fs.String("log-format", "text", "json or text")
	healthAddr := fs.String("health-addr", "", "serve the worker's /livez, /readyz and /metrics here too (off when empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := service.NewLogger(stderr, *logFormat, "info")
	if err != nil {
		return err
	}
	modelDir, err := filepath.Abs(*models)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(modelDir, "config.json")); err != nil {
		return fmt.Errorf("demo model not found at %s (run from the repository root or pass --models): %w", modelDir, err)
	}
	redisURL := getenv("REDIS_URL")
	if redisURL == "" {
		dir, err := filepath.Abs(filepath.Join(*state, "redis"))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		srv, err := redisproc.Start(dir)
		if err != nil {
			return err
		}
		defer srv.Stop()
		redisURL = srv.URL
		log.Info("private redis-server started", "url", redisURL, "dir", dir)
	}
	apiRDB, err := redisconn.Open(redisURL, getenv("REDIS_PASSWORD"))
	if err != nil {
		return err
	}
	defer apiRDB.Close()
	workerRDB, err := redisconn.Open(redisURL, getenv("REDIS_PASSWORD"))
	if err != nil {
		return err
	}
	defer workerRDB.Close()

	if err := registry.Apply(ctx, apiRDB, []registry.Spec{registry.Spec{
		ID: "21", Name: "Sales Lead Scoring Model", Source: "file://" + modelDir}.WithDefaults()}); err != nil {
		return err
	}
	key, _, err := apikey.Create(ctx, apiRDB, "demo", "")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	// The dashboard is on in dev: with the caller's admin token, else a fresh one.
	admin := getenv("HOKUSAI_ADMIN_TOKEN")
	if admin == "" {
		admin = "adm_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	// Rate limits as in production (1,000 requests an hour per key, the old
	// API's), unless HOKUSAI_RATE_LIMIT says otherwise.
	apiCfg := api.Config{AdminToken: admin, RateLimit: getenv("HOKUSAI_RATE_LIMIT")}
	// Local development: webhooks may go to a receiver on this machine.
	workerCfg := worker.Config{WebhookAllowPrivate: true}
	if err := devS3(ctx, getenv, &apiCfg, &workerCfg); err != nil {
		return err
	}
	srv, err := api.NewServer(apiCfg, apiRDB, log.With("tier", "api"))
	if err != nil {
		return err
	}
	sources := worker.NewSources(worker.SourcesConfig{})
	w, err := worker.New(workerCfg, workerRDB, sources.Load, log.With("tier", "worker"))
	if err != nil {
		return err
	}
	if err := w.Register(sources); err != nil {
		return err
	}
	printDemo(stdout, ln.Addr(), key, admin)
	var hln net.Listener
	if *healthAddr != "" {
		if hln, err = net.Listen("tcp", *healthAddr); err != nil {
			return fmt.Errorf("listen on %s: %w", *healthAddr, err)
		}
		log.Info("worker health listening", "addr", hln.Addr().String())
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx, ln) })
	if hln != nil {
		hs := &http.Server{Handler: w.HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error { <-gctx.Done(); return hs.Close() })
		g.Go(func() error {
			if err := hs.Serve(hln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// devS3 turns S3 batches on when HOKUSAI_S3_ALLOW names locations: the
// worker reads and writes them through the SDK's credential chain, and
// AWS_ENDPOINT_URL_S3 (a MinIO, say) when set.
func devS3(ctx context.Context, getenv func(string) string, a *api.Config, w *worker.Config) error {
	list := getenv("HOKUSAI_S3_ALLOW")
	if list == "" {
		return nil
	}
	allow, err := s3url.ParseAllow(list)
	if err != nil {
		return fmt.Errorf("HOKUSAI_S3_ALLOW: %w", err)
	}
	a.S3Allow, w.S3Allow = allow, allow
	w.S3, err = objstore.FromEnv(ctx, getenv)
	return err
}

func printDemo(w io.Writer, addr net.Addr, key, admin string) {
	port := addr.(*net.TCPAddr).Port
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	body := `{"inputs": {"company_size": 250, "engagement_score": 82, "website_visits": 14, "email_opens": 9, ` +
		`"content_downloads": 3, "demo_requested": true, "budget_confirmed": true, "industry": "Technology", ` +
		`"decision_timeline": "1-3 months", "title": "VP of Sales"}}`
	fmt.Fprintf(w, `Hokusai dev stack: API on %s, model 21 = %s
Demo API key (tenant "demo"): %s

Try it:
  curl -s %s/api/v1/models/21/predict -H "X-API-Key: %s" -H 'Content-Type: application/json' \
    -d '%s'

Async: add -H 'Prefer: respond-async', then GET the status_url with the same key.
Queues dashboard: %s/ops/queues and workers: %s/ops/workers (any user name, password %s)
Ctrl-C stops everything.
`, base, demoModelDir, key, base, key, strings.ReplaceAll(body, "'", `'\''`), base, base, admin)
}
