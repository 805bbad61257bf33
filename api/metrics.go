package api

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Outcomes of a sync wait, the label of hokusai_api_sync_wait_seconds.
const (
	waitReplied    = iota // the worker's completion arrived
	waitTimeout           // the wait ran out: 504
	waitCallerGone        // the caller hung up first
	waitOutcomes
)

var waitOutcomeNames = [waitOutcomes]string{"replied", "timeout", "caller_gone"}

// metrics are the API's Prometheus series, on a registry of the server's own
// so several servers can share a process. Everything the request path
// touches is resolved ahead of it: a request costs a map lookup, a short
// scan and two atomic updates, and allocates nothing.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	routes    map[routeKey]*routeMetrics
	unmatched *routeMetrics
	rejected  map[string]prometheus.Counter
	rejectVec *prometheus.CounterVec
	waits     [waitOutcomes]prometheus.Observer
	enqueue   *prometheus.CounterVec
	// rateErrors counts requests whose rate limits Redis could not check.
	rateErrors prometheus.Counter
}

type routeKey struct{ method, path string }

// routeMetrics holds one route's series, one pair per status code seen so
// far, in a copy-on-write slice so reads take no lock.
type routeMetrics struct {
	route, method string
	codes         atomic.Pointer[[]codeMetrics]
	mu            sync.Mutex // serializes adding a code
}

type codeMetrics struct {
	code     int
	count    prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(rs []route) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), routes: map[routeKey]*routeMetrics{}, rejected: map[string]prometheus.Counter{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_http_requests_total",
		Help: "HTTP requests answered by the API, by route (the route table's path), method and status code."},
		[]string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hokusai_http_request_duration_seconds",
		Help:    "Time from a request's arrival to its answer, by route, method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
		[]string{"route", "method", "code"})
	m.rejectVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_http_rejected_total",
		Help: "Requests answered with an error, by the error code of the JSON body (invalid_input, no_ready_worker, timeout, ...)."},
		[]string{"code"})
	waits := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hokusai_api_sync_wait_seconds",
		Help:    "How long sync predict requests waited for their worker after enqueueing, by outcome (replied, timeout, caller_gone).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}},
		[]string{"outcome"})
	m.enqueue = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hokusai_api_enqueue_errors_total",
		Help: "Enqueues that failed (Redis unreachable or refusing), by queue."}, []string{"queue"})
	m.rateErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "hokusai_api_rate_limit_errors_total",
		Help: "Requests whose rate limits could not be checked (Redis unreachable): let through or refused as HOKUSAI_RATE_LIMIT_FAIL says."})
	m.reg.MustRegister(m.requests, m.duration, m.rejectVec, waits, m.enqueue, m.rateErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range rs {
		m.routes[routeKey{r.Method, r.Path}] = &routeMetrics{route: r.Path, method: r.Method}
	}
	m.unmatched = &routeMetrics{route: "unmatched", method: "any"}
	for code := range statusOf {
		m.rejected[code] = m.rejectVec.WithLabelValues(code)
	}
	for i, name := range waitOutcomeNames {
		m.waits[i] = waits.WithLabelValues(name)
	}
	return m
}

// observe counts one answered request.
func (m *metrics) observe(method, path string, code int, d time.Duration) {
	r, ok := m.routes[routeKey{method, path}]
	if !ok {
		r = m.unmatched
	}
	c := r.get(m, code)
	c.count.Inc()
	c.duration.Observe(d.Seconds())
}

func (r *routeMetrics) get(m *metrics, code int) codeMetrics {
	if p := r.codes.Load(); p != nil {
		for _, c := range *p {
			if c.code == code {
				return c
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var cur []codeMetrics
	if p := r.codes.Load(); p != nil {
		cur = *p
	}
	for _, c := range cur {
		if c.code == code {
			return c
		}
	}
	s := strconv.Itoa(code)
	c := codeMetrics{code: code, count: m.requests.WithLabelValues(r.route, r.method, s),
		duration: m.duration.WithLabelValues(r.route, r.method, s)}
	next := append(slices.Clip(cur), c)
	r.codes.Store(&next)
	return c
}

// waited records how a sync wait that began at start ended.
func (m *metrics) waited(outcome int, start time.Time) {
	m.waits[outcome].Observe(time.Since(start).Seconds())
}

// reject counts an error answer by its code.
func (m *metrics) reject(code string) {
	if c, ok := m.rejected[code]; ok {
		c.Inc()
		return
	}
	m.rejectVec.WithLabelValues(code).Inc()
}

// metricsHandler serves GET /metrics: the API's series and the queues'.
// The ALB routes only /api/* to the API, so this is reachable from inside
// the VPC (Prometheus) and not from partners.
func (s *Server) metricsHandler() echo.HandlerFunc {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return echo.WrapHandler(h)
}

// queueCollector reads each pool's queues at scrape time. It reads asynq's
// counters through the Inspector on the guarded client (see memsafe.go), and
// a queue it cannot read is counted in hokusai_queue_stats_errors_total and
// left out while every other series is still exported.
type queueCollector struct {
	insp   *asynq.Inspector
	state  *state
	errs   *prometheus.CounterVec
	onFail func(queue string, err error)
}

var (
	queueSizeDesc = prometheus.NewDesc("hokusai_queue_size",
		"Tasks in a queue in any state (asynq's size: pending, active, scheduled, retry, archived, retained completed).", []string{"queue"}, nil)
	queueTasksDesc = prometheus.NewDesc("hokusai_queue_tasks",
		"Tasks in a queue by state.", []string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc("hokusai_queue_latency_seconds",
		"Age of the oldest pending task of a queue (0 when none is pending).", []string{"queue"}, nil)
	queueProcessedDesc = prometheus.NewDesc("hokusai_queue_processed_total",
		"Tasks a queue's workers finished, succeeded or failed (asynq's counter since the queue was created).", []string{"queue"}, nil)
	queueFailedDesc = prometheus.NewDesc("hokusai_queue_failed_total",
		"Task runs that returned an error, retried or not (asynq's counter since the queue was created).", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc("hokusai_queue_paused",
		"1 while a queue is paused (from the dashboard).", []string{"queue"}, nil)
	backlogDesc = prometheus.NewDesc("hokusai_queue_backlog",
		"Pending plus active tasks of a pool's lane: the autoscaling signal of the workers consuming that lane.", []string{"pool", "lane"}, nil)
	readyWorkersDesc = prometheus.NewDesc("hokusai_ready_workers",
		"Workers of a pool whose live heartbeat says ready.", []string{"pool"}, nil)
	strandedDesc = prometheus.NewDesc("hokusai_backlog_without_ready_worker",
		"1 when a lane of a pool has backlog and no ready worker consumes that lane: work waits for nobody. Alert on it.", []string{"pool"}, nil)
)

var lanes = []jobs.Lane{jobs.LaneSync, jobs.LaneAsync, jobs.LaneBatch}

func (qc *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueSizeDesc, queueTasksDesc, queueLatencyDesc, queueProcessedDesc,
		queueFailedDesc, queuePausedDesc, backlogDesc, readyWorkersDesc, strandedDesc} {
		ch <- d
	}
	qc.errs.Describe(ch)
}

func (qc *queueCollector) Collect(ch chan<- prometheus.Metric) {
	snap := qc.state.get()
	ready := map[string]int{} // every pool a model or a worker names, with its ready workers
	for _, spec := range snap.models {
		ready[spec.Pool] += 0
	}
	for i := range snap.workers {
		ready[snap.workers[i].Pool] += int(b2f(snap.workers[i].State == jobs.StateReady))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for pool, n := range ready {
		stranded := false
		for _, lane := range lanes {
			q := jobs.Queue(pool, lane)
			info, err := qc.insp.GetQueueInfo(q)
			if errors.Is(err, asynq.ErrQueueNotFound) {
				info, err = &asynq.QueueInfo{Queue: q}, nil // nothing was ever enqueued there
			}
			if err != nil {
				qc.errs.WithLabelValues(q).Inc()
				qc.onFail(q, err)
				continue
			}
			backlog := info.Pending + info.Active
			gauge(backlogDesc, float64(backlog), pool, string(lane))
			stranded = stranded || (backlog > 0 && !snap.laneServed(pool, lane))
			gauge(queueSizeDesc, float64(info.Size), q)
			for _, st := range []struct {
				name string
				n    int
			}{{"pending", info.Pending}, {"active", info.Active}, {"scheduled", info.Scheduled}, {"retry", info.Retry},
				{"archived", info.Archived}, {"completed", info.Completed}} {
				gauge(queueTasksDesc, float64(st.n), q, st.name)
			}
			gauge(queueLatencyDesc, info.Latency.Seconds(), q)
			ch <- prometheus.MustNewConstMetric(queueProcessedDesc, prometheus.CounterValue, float64(info.ProcessedTotal), q)
			ch <- prometheus.MustNewConstMetric(queueFailedDesc, prometheus.CounterValue, float64(info.FailedTotal), q)
			gauge(queuePausedDesc, b2f(info.Paused), q)
		}
		gauge(readyWorkersDesc, float64(n), pool)
		gauge(strandedDesc, b2f(stranded), pool)
	}
	qc.errs.Collect(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
