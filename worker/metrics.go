package worker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Task outcomes besides the failure codes handlers store.
const (
	outcomeSucceeded = "succeeded"
	outcomeFailed    = "failed" // a final error no handler named
	outcomeRetry     = "retry"  // an error asynq will retry
)

// metrics are the worker's Prometheus series, on a registry of the worker's
// own so several workers can share a process. /metrics on the health port
// serves them.
type metrics struct {
	reg       *prometheus.Registry
	tasks     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	perRow    *prometheus.HistogramVec
	callers   prometheus.Histogram
	taskRows  prometheus.Histogram
	loads     *prometheus.HistogramVec
	warnings  *prometheus.CounterVec
	reclaimed *prometheus.CounterVec

	mu       sync.RWMutex
	children map[taskKey]taskSeries // resolved label children, so a task costs no label hashing
}

type taskKey struct{ queue, model, outcome string }

type taskSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(w *Worker) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), children: map[taskKey]taskSeries{}}
	m.tasks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_worker_tasks_total",
		Help: "Tasks run, by queue, model and outcome (succeeded, invalid_input, caller_gone, canceled, model_failed, failed, retry)."},
		[]string{"queue", "model_id", "outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hokusai_worker_task_duration_seconds",
		Help:    "Time a handler spent on a task, by queue, model and outcome.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
		[]string{"queue", "model_id", "outcome"})
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hokusai_worker_queue_wait_seconds",
		Help:    "Time from enqueue at the API to pickup by this worker, by queue (predict tasks).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}},
		[]string{"queue"})
	m.perRow = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hokusai_worker_inference_seconds_per_row",
		Help:    "Model time per row: a predict call's or a batch chunk's scoring time divided by its rows, by model.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2}},
		[]string{"model_id"})
	m.callers = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hokusai_worker_predict_callers_per_task",
		Help:    "Callers a predict task answered: 1, or the size of a group the API gathered while earlier predicts were in flight.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})
	m.taskRows = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hokusai_worker_predict_rows_per_task",
		Help:    "Rows a predict task scored as one block, over all its callers.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}})
	m.loads = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hokusai_worker_model_load_seconds",
		Help:    "Time to load a model (download if needed, compile), by model and outcome (ok, failed).",
		Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}},
		[]string{"model_id", "outcome"})
	m.warnings = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_worker_input_warnings_total",
		Help: "What lax input parsing assumed in scored rows, by model, field and warning code (unknown_value, timeline_past, " +
			"timeline_far, unknown_field); fields the model does not take count as field \"(unknown)\"."},
		[]string{"model_id", "field", "code"})
	m.reclaimed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_worker_reclaimed_tasks_total",
		Help: "Tasks this worker handed back to their queue because the worker holding them stopped its heartbeat, by queue."},
		[]string{"queue"})
	m.reg.MustRegister(m.tasks, m.duration, m.queueWait, m.perRow, m.callers, m.taskRows, m.loads, m.warnings, m.reclaimed, stateCollector{w}, w.usage.Collector(usageSeries...),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) task(k taskKey, d time.Duration) {
	m.mu.RLock()
	s, ok := m.children[k]
	m.mu.RUnlock()
	if !ok {
		s = taskSeries{count: m.tasks.WithLabelValues(k.queue, k.model, k.outcome),
			duration: m.duration.WithLabelValues(k.queue, k.model, k.outcome)}
		m.mu.Lock()
		m.children[k] = s
		m.mu.Unlock()
	}
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

// rows records the model time of n rows.
func (m *metrics) rows(model string, d time.Duration, n int) {
	if n > 0 {
		m.perRow.WithLabelValues(model).Observe(d.Seconds() / float64(n))
	}
}

// usageSeries are the worker's Prometheus counters of usage, by tenant
// (internal/usage defines what each counts).
var usageSeries = []usage.Series{
	{Name: "hokusai_worker_tenant_rows_total", Help: "Predict rows scored (sync and async), by tenant.",
		Value: func(c usage.Counts) float64 { return float64(c.Rows) }},
	{Name: "hokusai_worker_tenant_batch_rows_total", Help: "Batch rows scored, by tenant, each counted once.",
		Value: func(c usage.Counts) float64 { return float64(c.BatchRows) }},
	{Name: "hokusai_worker_tenant_failed_rows_total", Help: "Batch rows that failed (invalid, or their chunk failed every attempt), by tenant.",
		Value: func(c usage.Counts) float64 { return float64(c.FailedRows) }},
	{Name: "hokusai_worker_tenant_compute_seconds_total", Help: "Time spent scoring (model calls, batch chunk decoding and scoring), by tenant.",
		Value: func(c usage.Counts) float64 { return c.Compute.Seconds() }},
}

// unknownFieldLabel stands for every field a model does not take: names a
// caller made up never become label values.
const unknownFieldLabel = "(unknown)"

// warned counts input warnings by model, field and code (never by value).
func (m *metrics) warned(model string, schema *jobs.Schema, warns []jobs.Warning) {
	for _, w := range warns {
		field := w.Field
		if schema.Index(field) < 0 {
			field = unknownFieldLabel
		}
		m.warnings.WithLabelValues(model, field, w.Code).Inc()
	}
}

func (m *metrics) load(model string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	m.loads.WithLabelValues(model, outcome).Observe(d.Seconds())
}

// Register adds collectors to the worker's /metrics, such as the model
// cache and token counters of its Sources.
func (w *Worker) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := w.metrics.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (w *Worker) metricsHandler() http.Handler {
	return promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// taskNote is what a handler tells observeTask about its task, for the
// task's one log line and its metric labels.
type taskNote struct {
	requestID, tenant, modelID string
	batchID                    string
	chunk                      int
	outcome                    string // empty: derived from the handler's error
	rows                       int
	members                    int   // callers a predict task answers: 1, or a group's size
	enqueuedAt                 int64 // Unix ms; 0 when unknown
}

type noteKey struct{}

// noteOf returns the note observeTask put in ctx (a throwaway one when a
// handler runs without it).
func noteOf(ctx context.Context) *taskNote {
	if n, ok := ctx.Value(noteKey{}).(*taskNote); ok {
		return n
	}
	return &taskNote{}
}

// noteBatch names a batch chunk's model for observeTask.
func (w *Worker) noteBatch(h asynq.HandlerFunc) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		if p, err := jobs.DecodeBatchChunk(t.Payload()); err == nil {
			n := noteOf(ctx)
			n.modelID, n.batchID, n.chunk = p.ModelID, p.BatchID, p.Chunk
		}
		return h(ctx, t)
	}
}

// observeTask wraps every handler: it times the task, counts it by queue,
// model and outcome, and writes the task's one log line with request_id,
// tenant, model_id, task_id, queue, queue wait, duration and outcome.
func (w *Worker) observeTask(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		n := &taskNote{}
		err := next.ProcessTask(context.WithValue(ctx, noteKey{}, n), t)
		d := time.Since(start)
		queue, _ := asynq.GetQueueName(ctx)
		taskID, _ := asynq.GetTaskID(ctx)
		outcome := n.outcome
		switch {
		case outcome != "":
		case err == nil:
			outcome = outcomeSucceeded
		case errors.Is(err, asynq.SkipRetry):
			outcome = outcomeFailed
		default:
			outcome = outcomeRetry
		}
		w.metrics.task(taskKey{queue, n.modelID, outcome}, d)
		attrs := make([]slog.Attr, 0, 14)
		for _, a := range [...]struct{ k, v string }{{"request_id", n.requestID}, {"tenant", n.tenant},
			{"model_id", n.modelID}, {"batch_id", n.batchID}} {
			if a.v != "" {
				attrs = append(attrs, slog.String(a.k, a.v))
			}
		}
		if n.batchID != "" {
			attrs = append(attrs, slog.Int("chunk", n.chunk))
		}
		attrs = append(attrs, slog.String("task_id", taskID), slog.String("queue", queue), slog.String("type", t.Type()),
			slog.String("outcome", outcome), slog.Int64("duration_us", d.Microseconds()))
		if n.enqueuedAt > 0 {
			wait := start.Sub(time.UnixMilli(n.enqueuedAt))
			w.metrics.queueWait.WithLabelValues(queue).Observe(max(wait, 0).Seconds())
			attrs = append(attrs, slog.Int64("queue_wait_ms", wait.Milliseconds()))
		}
		if n.rows > 0 {
			attrs = append(attrs, slog.Int("rows", n.rows))
		}
		if n.members > 0 {
			w.metrics.callers.Observe(float64(n.members))
			w.metrics.taskRows.Observe(float64(n.rows))
		}
		if n.members > 1 {
			attrs = append(attrs, slog.Int("callers", n.members))
		}
		if retried, _ := asynq.GetRetryCount(ctx); retried > 0 {
			attrs = append(attrs, slog.Int("retried", retried))
		}
		level := slog.LevelInfo
		if err != nil && n.outcome == "" {
			level = slog.LevelWarn
			attrs = append(attrs, slog.String("err", err.Error()))
		}
		w.log.LogAttrs(ctx, level, "task", attrs...)
		return err
	})
}

// stateCollector exports the worker's readiness at scrape time.
type stateCollector struct{ w *Worker }

var (
	readyDesc = prometheus.NewDesc("hokusai_worker_ready",
		"1 while the worker takes work.", nil, nil)
	stateDesc = prometheus.NewDesc("hokusai_worker_state",
		"1 for the worker's current state (starting, ready, not_ready, draining).", []string{"state"}, nil)
	reasonDesc = prometheus.NewDesc("hokusai_worker_not_ready_reason",
		"1 for each reason the worker is not ready now (hf_token_missing, hf_token_invalid, model_load_failed:ID, redis_unreachable, ...).",
		[]string{"reason"}, nil)
	modelsDesc = prometheus.NewDesc("hokusai_worker_models_loaded",
		"Models the worker holds ready to serve.", nil, nil)
	wakeupsDesc = prometheus.NewDesc("hokusai_worker_wakeups_total",
		"Times an idle worker was woken by the API's push rather than by its fallback poll.", nil, nil)
)

var states = []string{jobs.StateStarting, jobs.StateReady, jobs.StateNotReady, jobs.StateDraining}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{readyDesc, stateDesc, reasonDesc, modelsDesc, wakeupsDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.w.mu.RLock()
	state, reasons, models := c.w.state, c.w.reasons, len(c.w.models)
	c.w.mu.RUnlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(readyDesc, b2f(state == jobs.StateReady))
	for _, s := range states {
		gauge(stateDesc, b2f(s == state), s)
	}
	for _, r := range reasons {
		gauge(reasonDesc, 1, r)
	}
	gauge(modelsDesc, float64(models))
	ch <- prometheus.MustNewConstMetric(wakeupsDesc, prometheus.CounterValue, float64(c.w.Wakeups()))
}

var (
	cacheHitsDesc = prometheus.NewDesc("hokusai_worker_model_cache_hits_total",
		"Model lookups answered from memory.", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("hokusai_worker_model_cache_misses_total",
		"Model lookups that waited for a load.", nil, nil)
	cacheLoadsDesc = prometheus.NewDesc("hokusai_worker_model_cache_loads_total",
		"Model loads, by outcome (ok, failed).", []string{"outcome"}, nil)
	cacheEvictionsDesc = prometheus.NewDesc("hokusai_worker_model_cache_evictions_total",
		"Models dropped from memory to make room.", nil, nil)
	cacheBytesDesc = prometheus.NewDesc("hokusai_worker_model_cache_bytes",
		"Bytes of models held in memory.", nil, nil)
	cacheMaxBytesDesc = prometheus.NewDesc("hokusai_worker_model_cache_max_bytes",
		"The model cache's budget (HOKUSAI_MODEL_CACHE_BYTES).", nil, nil)
	tokenErrorsDesc = prometheus.NewDesc("hokusai_worker_token_refresh_errors_total",
		"Failed reads of the HF token from its source (file, Secrets Manager). Never the token itself.", nil, nil)
)

// Describe and Collect make Sources a prometheus.Collector of its cache's
// counters and its token source's refresh errors (see Worker.Register).
func (s *Sources) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheLoadsDesc, cacheEvictionsDesc,
		cacheBytesDesc, cacheMaxBytesDesc, tokenErrorsDesc} {
		ch <- d
	}
}

func (s *Sources) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(cacheHitsDesc, st.Hits)
	counter(cacheMissesDesc, st.Misses)
	counter(cacheLoadsDesc, st.Loads, "ok")
	counter(cacheLoadsDesc, st.LoadErrors, "failed")
	counter(cacheEvictionsDesc, st.Evictions)
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(cacheMaxBytesDesc, prometheus.GaugeValue, float64(st.MaxBytes))
	var tokenErrors uint64
	if r, ok := s.cfg.Token.(interface{ Errors() uint64 }); ok {
		tokenErrors = r.Errors()
	}
	counter(tokenErrorsDesc, tokenErrors)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
