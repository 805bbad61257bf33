package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/ratelimit"
	"github.com/hokusai-ai/inference-queue/internal/redisconn"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Model is a loaded model as the worker runs it.
type Model interface {
	// Info is the model's public contract; the worker publishes it.
	Info() jobs.ModelInfo
	// Predict scores validated rows, returning one JSON-ready value per row,
	// with the features behind each score when explain is set.
	Predict(rows []jobs.Row, explain bool) ([]any, error)
}

// LoadFunc loads the model a registry entry names. An error that carries a
// readiness reason wraps a *NotReady; any other is reported as
// model_load_failed:ID.
type LoadFunc func(ctx context.Context, spec registry.Spec) (Model, error)

// NotReady is an error with a machine-readable readiness reason, such as
// hf_token_missing or pickle_refused:21.
type NotReady struct {
	Reason string
	Err    error
}

func (e *NotReady) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *NotReady) Unwrap() error { return e.Err }

// Worker runs one pool's models behind its queues.
type Worker struct {
	cfg  Config
	rdb  redis.UniversalClient
	load LoadFunc
	log  *slog.Logger
	wake *queue.DequeueHook
	// enqueuer queues a batch's next chunks.
	enqueuer *asynq.Client
	webhooks *http.Client // see newWebhookClient
	hooks    *deliveries  // nil unless the worker consumes the batch lane

	mu      sync.RWMutex
	models  map[string]loaded
	state   string
	reasons []string
	started time.Time
	wakeups atomic.Int64
	// beating is when this worker's heartbeats began reaching Redis
	// without a failure since (Unix ns), 0 after a failed one.
	beating atomic.Int64
	changed chan struct{} // a state change, for an immediate heartbeat

	metrics *metrics
	tracer  trace.Tracer // nil when tracing is off
	usage   *usage.Meter // rows and compute per tenant, key, model, day
	// rows charges S3 batches' rows against their batch row quotas.
	rows *ratelimit.Gatherer
}

type loaded struct {
	spec  registry.Spec
	model Model
	info  jobs.ModelInfo
}

// New builds a worker. rdb is dedicated to it: New adds the wake hook to it.
func New(cfg Config, rdb redis.UniversalClient, load LoadFunc, log *slog.Logger) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, rdb: rdb, load: load, log: log.With("worker_id", cfg.ID, "pool", cfg.Pool),
		models: map[string]loaded{}, state: jobs.StateStarting, started: time.Now().UTC(),
		changed: make(chan struct{}, 1), enqueuer: asynq.NewClientFromRedisClient(rdb),
		webhooks: newWebhookClient(cfg.WebhookAllowPrivate), usage: usage.NewMeter(rdb, cfg.Usage),
		rows: ratelimit.NewGatherer(rdb)}
	if slices.Contains(cfg.Lanes, jobs.LaneBatch) {
		w.hooks = newDeliveries(w)
	}
	w.metrics = newMetrics(w)
	if cfg.TracerProvider != nil {
		w.tracer = cfg.TracerProvider.Tracer("github.com/hokusai-ai/inference-queue/worker")
	}
	return w, nil
}

// Run prepares the worker, consumes its pool's queues once ready, and drains
// when ctx ends. It returns after the drain.
func (w *Worker) Run(ctx context.Context) error {
	hookCtx, stopHook := context.WithCancel(context.Background())
	defer stopHook()
	w.wake = queue.NewDequeueHook(hookCtx, w.rdb, w.cfg.ID, w.cfg.Pool, w.cfg.Lanes, w.cfg.WakeTimeout)
	w.wake.Wakes = func() { w.wakeups.Add(1) }
	w.wake.Closed = w.gated
	w.rdb.AddHook(w.wake)

	hbDone := make(chan struct{})
	hbCtx, stopHB := context.WithCancel(context.Background())
	go func() { defer close(hbDone); w.heartbeatLoop(hbCtx) }()
	defer func() { stopHB(); <-hbDone; w.removeHeartbeat() }()
	reclaimDone := make(chan struct{})
	go func() { defer close(reclaimDone); w.reclaimLoop(hbCtx) }()
	defer func() { stopHB(); <-reclaimDone }()
	// Deferred after the drain: the last flush holds every task's counts.
	meterDone := make(chan struct{})
	meterCtx, stopMeter := context.WithCancel(context.Background())
	go func() { defer close(meterDone); w.usage.Run(meterCtx, w.log) }()
	defer func() { stopMeter(); <-meterDone }()

	if !w.waitReady(ctx) {
		return nil
	}
	srv := asynq.NewServerFromRedisClient(w.rdb, asynq.Config{
		Concurrency:       w.cfg.Concurrency,
		Queues:            jobs.Queues(w.cfg.Pool, w.cfg.Lanes...),
		TaskCheckInterval: w.cfg.PollInterval,
		RetryDelayFunc:    w.cfg.retryDelay,
		// A result Redis could not store for lack of memory, or stored but
		// could not copy to the replicas HOKUSAI_ACCEPT_DURABILITY asks for,
		// is retried without counting against the task's retries: accepted
		// work waits out a full Redis (until retention frees room) or a
		// replica's outage instead of failing for it.
		IsFailure: func(err error) bool { return !errors.Is(err, queue.ErrNotReplicated) && !queue.IsOutOfMemory(err) },
		// Retries wait in asynq's retry set until this check moves them back;
		// its default, 5s, would stretch 1s retry delays to 5s.
		DelayedTaskCheckInterval: min(max(w.cfg.TaskRetryDelay, 10*time.Millisecond), 5*time.Second),
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		Logger:                   asynqLogger{w.log.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		BaseContext:              func() context.Context { return context.Background() },
	})
	mux := asynq.NewServeMux()
	mux.Use(w.observeTask)
	mux.HandleFunc(jobs.TypePredict, w.handlePredict)
	mux.HandleFunc(jobs.TypePredictGroup, w.handlePredictGroup)
	mux.HandleFunc(jobs.TypeBatchChunk, w.noteBatch(w.handleBatchChunk))
	mux.HandleFunc(jobs.TypeBatchNotify, w.handleBatchNotify)
	mux.HandleFunc(jobs.TypeBatchS3, w.handleBatchS3)
	mux.HandleFunc(jobs.TypeBatchUploadCheck, w.handleUploadCheck)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	w.log.Info("worker consuming", "queues", jobs.Queues(w.cfg.Pool, w.cfg.Lanes...), "models", w.modelIDs())
	// Webhooks are delivered beside the task slots, not in them.
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		if w.hooks != nil {
			w.hooks.run(ctx)
		}
	}()

	reload := time.NewTicker(5 * time.Second)
	defer reload.Stop()
	recheck := time.NewTicker(w.cfg.RecheckInterval)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			w.setState(jobs.StateDraining, nil)
			w.log.Info("worker draining", "timeout", w.cfg.ShutdownTimeout.String())
			stopHook() // end a blocked BLPOP now rather than at its timeout
			srv.Shutdown()
			<-hooksDone // attempts cut short, their deliveries handed back
			w.log.Info("worker stopped")
			return nil
		case <-reload.C:
			w.prepare(ctx) // picks up models applied to the registry later
			w.reapFair(ctx)
		case <-recheck.C:
			w.recheck(ctx)
		}
	}
}

// recheck asks Config.Recheck whether the worker may go on serving, and
// closes or reopens the gate on its queues accordingly.
func (w *Worker) recheck(ctx context.Context) {
	if w.cfg.Recheck == nil {
		return
	}
	reasons := w.cfg.Recheck(ctx)
	w.mu.RLock()
	state := w.state
	w.mu.RUnlock()
	switch {
	case len(reasons) > 0 && state == jobs.StateReady:
		w.log.Warn("worker stops taking work", "reasons", reasons)
		w.setState(jobs.StateNotReady, reasons)
	case len(reasons) == 0 && state == jobs.StateNotReady:
		w.log.Info("worker takes work again")
		w.setState(jobs.StateReady, nil)
	}
}

// gated reports whether the worker must not take tasks now.
func (w *Worker) gated() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.state != jobs.StateReady
}

// waitReady retries prepare with doubling backoff until it reports no
// reason, or ctx ends (then it returns false).
func (w *Worker) waitReady(ctx context.Context) bool {
	backoff := w.cfg.RetryInterval
	for {
		reasons := w.prepare(ctx)
		if len(reasons) == 0 {
			w.setState(jobs.StateReady, nil)
			return true
		}
		w.setState(jobs.StateNotReady, reasons)
		w.log.Warn("worker not ready", "reasons", reasons, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.MaxRetryInterval)
	}
}

// prepare checks Redis and loads every model of the pool not yet loaded at
// its registered revision, publishing each one's info. It returns the
// reasons the worker cannot serve its whole pool.
func (w *Worker) prepare(ctx context.Context) []string {
	if err := redisconn.Ping(ctx, w.rdb); err != nil {
		return []string{ReasonRedis}
	}
	specs, err := registry.List(ctx, w.rdb)
	if err != nil {
		return []string{ReasonRedis}
	}
	var reasons []string
	n := 0
	for _, spec := range specs {
		if spec.Pool != w.cfg.Pool {
			continue
		}
		n++
		if cur, ok := w.model(spec.ID); ok && cur.spec == spec {
			continue
		}
		start := time.Now()
		m, err := w.load(ctx, spec)
		w.metrics.load(spec.ID, time.Since(start), err)
		if err != nil {
			reason := modelReason(ReasonModelLoadFailed, spec.ID)
			if nr := (*NotReady)(nil); errors.As(err, &nr) {
				reason = nr.Reason
			}
			reasons = append(reasons, reason)
			w.log.Error("model load failed", "model_id", spec.ID, "source", spec.Source, "reason", reason, "err", err.Error())
			continue
		}
		info := m.Info()
		info.ID, info.Name = spec.ID, spec.Name
		b, _ := json.Marshal(info)
		if err := w.rdb.Set(ctx, jobs.ModelInfoKey(spec.ID), b, 0).Err(); err != nil {
			return []string{ReasonRedis}
		}
		w.mu.Lock()
		w.models[spec.ID] = loaded{spec: spec, model: m, info: info}
		w.mu.Unlock()
		w.log.Info("model loaded", "model_id", spec.ID, "revision", info.Revision, "duration_ms", time.Since(start).Milliseconds())
	}
	if n == 0 {
		reasons = append(reasons, "no_models_in_pool")
	}
	return reasons
}

func (w *Worker) model(id string) (loaded, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	m, ok := w.models[id]
	return m, ok
}

func (w *Worker) modelIDs() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	ids := make([]string, 0, len(w.models))
	for id := range w.models {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (w *Worker) setState(state string, reasons []string) {
	w.mu.Lock()
	w.state, w.reasons = state, reasons
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Heartbeat returns what the worker says of itself now.
func (w *Worker) Heartbeat() jobs.Heartbeat {
	host, _ := os.Hostname()
	w.mu.RLock()
	defer w.mu.RUnlock()
	hb := jobs.Heartbeat{WorkerID: w.cfg.ID, Pool: w.cfg.Pool, Host: host, State: w.state,
		Reasons: w.reasons, Lanes: w.cfg.Lanes, Slots: w.cfg.Concurrency, StartedAt: w.started, SeenAt: time.Now().UTC(), Models: []jobs.ModelStatus{}}
	for id, m := range w.models {
		hb.Models = append(hb.Models, jobs.ModelStatus{ID: id, Revision: m.info.Revision, Loaded: true})
	}
	slices.SortFunc(hb.Models, func(a, b jobs.ModelStatus) int { return cmp.Compare(a.ID, b.ID) })
	return hb
}

func (w *Worker) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(jobs.HeartbeatInterval)
	defer t.Stop()
	for {
		w.beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.changed:
		}
	}
}

func (w *Worker) beat(ctx context.Context) {
	hb := w.Heartbeat()
	b, _ := json.Marshal(hb)
	now := time.Now()
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, jobs.HeartbeatKey(hb.WorkerID), b, jobs.HeartbeatTTL)
		p.ZAdd(ctx, jobs.WorkersKey, redis.Z{Score: float64(now.UnixMilli()), Member: hb.WorkerID})
		p.ZRemRangeByScore(ctx, jobs.WorkersKey, "-inf", fmt.Sprint(now.Add(-time.Minute).UnixMilli()))
		return nil
	})
	switch {
	case err == nil:
		w.beating.CompareAndSwap(0, now.UnixNano())
	case ctx.Err() == nil:
		w.beating.Store(0)
		w.log.Debug("heartbeat failed", "err", err.Error())
	}
}

func (w *Worker) removeHeartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.rdb.Del(ctx, jobs.HeartbeatKey(w.cfg.ID))
	w.rdb.ZRem(ctx, jobs.WorkersKey, w.cfg.ID)
}

// HealthHandler serves /livez (the process is sound), /readyz (the worker
// consumes; otherwise 503 with its reasons) and /metrics (Prometheus).
func (w *Worker) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", w.metricsHandler())
	mux.HandleFunc("GET /livez", func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]any{"status": "alive", "worker_id": w.cfg.ID})
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		hb := w.Heartbeat()
		code := http.StatusOK
		if hb.State != jobs.StateReady {
			code = http.StatusServiceUnavailable
		}
		writeJSON(rw, code, map[string]any{"status": hb.State, "reasons": nonNil(hb.Reasons),
			"worker_id": hb.WorkerID, "pool": hb.Pool, "models": hb.Models})
	})
	return mux
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

// asynqLogger adapts slog to asynq's Logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "fatal", true) }

// Wakeups counts how often an idle worker was woken by the API's push rather
// than by its fallback poll.
func (w *Worker) Wakeups() int64 { return w.wakeups.Load() }
