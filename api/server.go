package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Server is the API tier: Echo plus the asynq client, the reply channel and
// the in-memory view of models and workers.
type Server struct {
	cfg     Config
	rdb     redis.UniversalClient
	log     *slog.Logger
	echo    *echo.Echo
	client  *asynq.Client
	insp    *asynq.Inspector
	state   *state
	replies *replies
	groups  *groups
	keys    *keyCache
	limits  *limiter
	// inflight caps each tenant's sync predicts in flight.
	inflight *inflight
	usage    *usage.Meter
	routes   []route
	metrics  *metrics
	ops      *ops         // nil when /ops is off
	tracer   trace.Tracer // nil when tracing is off
	// lastSync is when the latest sync predict arrived (Unix ns); batch work
	// paces itself while partners are calling (see batchPacer).
	lastSync atomic.Int64
}

// NewServer builds the API on rdb. Call Run to serve. It adds two hooks to
// rdb (internal/queue): one keeps queue reads from failing on asynq's memory
// estimate, one sends an enqueue's follow-up commands with it.
func NewServer(cfg Config, rdb redis.UniversalClient, log *slog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rdb.AddHook(queue.MemGuard{})
	rdb.AddHook(queue.NewFollowUpHook(rdb))
	s := &Server{
		cfg: cfg, rdb: rdb, log: log,
		client:   asynq.NewClientFromRedisClient(rdb),
		insp:     asynq.NewInspectorFromRedisClient(rdb),
		state:    &state{rdb: rdb},
		replies:  newReplies(cfg.Instance, log),
		keys:     &keyCache{rdb: rdb, ttl: cfg.KeyCacheTTL, m: map[string]keyEntry{}},
		limits:   newLimiter(cfg, rdb),
		inflight: newInflight(cfg.TenantSyncConcurrency, cfg.TenantSyncQueue),
		usage:    usage.NewMeter(rdb, cfg.Usage),
		routes:   withHead(routes),
		ops:      newOps(cfg, rdb),
	}
	s.groups = &groups{maxRows: cfg.PredictGroupRows, maxBytes: cfg.PredictGroupBytes, inFlight: predictGroupInFlight,
		send: s.sendGroup, keys: map[groupKey]*keyState{}}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer("github.com/hokusai-ai/inference-queue/api")
	}
	s.metrics = newMetrics(s.routes)
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hokusai_api_sync_slot_waiting",
		Help: "Sync predicts waiting in this API process for a slot of their tenant's (HOKUSAI_TENANT_SYNC_CONCURRENCY)."},
		s.inflight.waiting))
	s.metrics.reg.MustRegister(s.usage.Collector(usageSeries...))
	s.metrics.reg.MustRegister(&queueCollector{insp: s.insp, state: s.state,
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_queue_stats_errors_total",
			Help: "Scrapes in which a queue's counters could not be read, by queue."}, []string{"queue"}),
		onFail: func(q string, err error) { log.Warn("queue stats unreadable", "queue", q, "err", err.Error()) }})
	s.state.cur.Store(&snapshot{models: map[string]registry.Spec{}, info: map[string]*jobs.ModelInfo{}})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(log, s.rejected)
	e.Use(s.requestID)
	if s.tracer != nil {
		e.Use(s.traceRequest)
	}
	e.Use(s.accessLog)
	e.Use(s.guardBody)
	s.addRoutes(e)
	s.echo = e
	return s, nil
}

// Handler is the whole HTTP surface, for tests and for embedding. Only Run
// also turns net/http's own error answers into JSON (malformed.go): they
// are written on the connection, outside any handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Run serves on ln until ctx ends, then drains in-flight requests (up to the
// sync timeout plus a second) and returns.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	subscribed := make(chan struct{})
	wg.Add(4)
	go func() { defer wg.Done(); s.replies.run(bg, s.rdb, subscribed) }()
	go func() { defer wg.Done(); s.usage.Run(bg, s.log) }() // stop() comes after every answer: all are written
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	s.state.refresh(rctx)
	cancel()
	go func() { defer wg.Done(); s.state.run(bg, s.cfg.RefreshInterval) }()
	go func() { defer wg.Done(); s.runSchedules(bg) }() // after the first refresh: runs need the registry
	<-subscribed

	// Headers get ReadHeaderTimeout, bodies the deadline guardBody sets per
	// request (a predict's and a gigabyte upload's differ). ReadTimeout
	// would add nothing: that deadline replaces it on every request with a
	// body, and a request without one has nothing more to read.
	hs := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(jsonErrorListener{ln, s}) }()
	s.log.Info("api listening", "addr", ln.Addr().String(), "instance", s.cfg.Instance)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.SyncTimeout+time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	stop()
	wg.Wait()
	_ = s.client.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// requestID gives every request an id, echoed in X-Request-ID and used as the
// job id of predict requests.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := jobs.NewRequestID()
		c.Set("request_id", id)
		c.Response().Header().Set(headerRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get("request_id").(string)
	return id
}

// accessLog writes one line per request and counts it in the metrics. The
// query string is logged only with any api_key redacted.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		method, path, status := c.Request().Method, c.Path(), c.Response().Status
		s.metrics.observe(method, path, status, d)
		s.meter(c, path, status)
		attrs := []any{"request_id", requestID(c), "method", method, "route", path,
			"status", status, "duration_us", d.Microseconds()}
		if q := c.Request().URL.RawQuery; q != "" {
			attrs = append(attrs, "query", redactQuery(q))
		}
		if t, _ := c.Get("tenant").(string); t != "" {
			attrs = append(attrs, "tenant", t)
		}
		if id := c.Param("id"); id != "" && path != "" {
			name := "id"
			if strings.HasPrefix(path, "/api/v1/models/") {
				name = "model_id"
			}
			attrs = append(attrs, name, id)
		}
		if q, _ := c.Get("queue").(string); q != "" {
			attrs = append(attrs, "queue", q)
		}
		if code, _ := c.Get("error_code").(string); code != "" {
			attrs = append(attrs, "error_code", code)
		}
		s.log.Info("request", attrs...)
		return nil
	}
}

// rejected notes an error answer's code for the access log and the metrics.
func (s *Server) rejected(c echo.Context, code string) {
	c.Set("error_code", code)
	s.metrics.reject(code)
}
