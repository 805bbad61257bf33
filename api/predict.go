package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// predictRequest is the body partners send.
type predictRequest struct {
	Inputs  json.RawMessage `json:"inputs"`
	Options json.RawMessage `json:"options,omitempty"`
	rows    int             // once admitted
}

// acceptedResponse is the 202 answer to async work.
type acceptedResponse struct {
	RequestID string `json:"request_id"`
	ModelID   string `json:"model_id"`
	Status    string `json:"status"`
	StatusURL string `json:"status_url"`
}

// predict answers POST /api/v1/models/:id/predict: synchronously unless the
// caller prefers respond-async.
func (s *Server) predict() echo.HandlerFunc {
	return func(c echo.Context) error {
		prefs := parsePrefer(c.Request().Header.Values("Prefer"))
		if prefs.async {
			return s.submit(c, jobs.LaneAsync, 0)
		}
		s.lastSync.Store(time.Now().UnixNano())
		defer func() { s.lastSync.Store(time.Now().UnixNano()) }() // a long wait counts to its end
		return s.submit(c, jobs.LaneSync, prefs.wait)
	}
}

// submitJob answers POST /api/v1/models/:id/jobs.
func (s *Server) submitJob() echo.HandlerFunc {
	return func(c echo.Context) error { return s.submit(c, jobs.LaneAsync, 0) }
}

// submit admits and enqueues a predict; on the sync lane it waits up to the
// sync timeout, or the caller's shorter preferred wait.
func (s *Server) submit(c echo.Context, lane jobs.Lane, preferredWait time.Duration) error {
	// The request's receipt, to the millisecond the payload keeps: timelines
	// are read as of it, here and on the worker alike.
	received := time.UnixMilli(time.Now().UnixMilli())
	spec, req, err := s.admit(c, lane, received)
	if err != nil {
		return err
	}
	id := requestID(c)
	p := jobs.PredictPayload{RequestID: id, Tenant: tenantOf(c), KeyID: keyID(c), ModelID: spec.ID, Inputs: req.Inputs,
		Options: req.Options, EnqueuedAt: received.UnixMilli(), Trace: s.traceparent(c)}
	if lane == jobs.LaneAsync {
		if err := s.enqueue(c, spec, p, lane); err != nil {
			return err
		}
		url := "/api/v1/jobs/" + id
		c.Response().Header().Set("Location", url)
		c.Response().Header().Set("Preference-Applied", "respond-async")
		return c.JSON(http.StatusAccepted, acceptedResponse{RequestID: id, ModelID: spec.ID, Status: "queued", StatusURL: url})
	}
	wait := s.cfg.SyncTimeout
	if preferredWait > 0 && preferredWait < wait {
		wait = preferredWait
	}
	slotWait := time.Now()
	release, err := s.inflight.acquire(c.Request().Context(), p.Tenant, wait)
	if err != nil {
		return err
	}
	defer release()
	wait -= time.Since(slotWait) // a wait for a slot counts against the caller's
	p.ReplyTo = s.replies.channel
	p.Deadline = time.Now().Add(wait).UnixMilli()
	done, stop := s.replies.expect(id)
	defer stop()
	grouped, leave, err := s.sendSync(c, spec, p, req.rows)
	defer leave()
	if err != nil {
		return err
	}
	waitStart := time.Now()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// A completion published while this process's subscription was
	// reconnecting (a Redis blip) is lost; the stored result is not, so a
	// long wait looks for it now and then, and once more at the end.
	every := firstLook
	look := time.NewTimer(every)
	defer look.Stop()
	for {
		select {
		case o := <-done:
			s.metrics.waited(waitReplied, waitStart)
			return s.answer(c, o)
		case <-look.C:
			if o, ok := s.storedOutcome(jobs.Queue(spec.Pool, lane), id, grouped); ok {
				s.metrics.waited(waitReplied, waitStart)
				return s.answer(c, o)
			}
			every = min(2*every, lastLook)
			look.Reset(every)
		case <-timer.C:
			if o, ok := s.storedOutcome(jobs.Queue(spec.Pool, lane), id, grouped); ok {
				s.metrics.waited(waitReplied, waitStart)
				return s.answer(c, o)
			}
			s.metrics.waited(waitTimeout, waitStart)
			return s.timedOut(c, id)
		case <-c.Request().Context().Done():
			s.metrics.waited(waitCallerGone, waitStart)
			s.callerGone(id)
			return nil
		}
	}
}

// A sync wait looks for a stored result after firstLook, then at doubling
// intervals up to lastLook: a reply lost in a Redis blip costs the caller
// seconds, not the rest of its wait. Waits that end sooner, nearly all,
// cost Redis nothing more.
const (
	firstLook = time.Second
	lastLook  = 4 * time.Second
)

// admit runs the checks every predict passes before it is enqueued, in the
// order callers expect: model exists, body is well-formed and valid against
// the model's schema (as of received), a worker consuming lane can serve it.
func (s *Server) admit(c echo.Context, lane jobs.Lane, received time.Time) (registry.Spec, predictRequest, error) {
	var req predictRequest
	snap := s.state.get()
	spec, ok := snap.models[c.Param("id")]
	if !ok {
		return spec, req, errorf(CodeModelNotFound, "Model %s not found.", c.Param("id"))
	}
	body, err := s.readJSON(c)
	if err != nil {
		return spec, req, err
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return spec, req, errorf(CodeBadRequest, "The body is not valid JSON: %s.", jsonProblem(err))
	}
	if ferr := jobs.MissingInputs(req.Inputs); ferr != nil {
		return spec, req, inputError(ferr)
	}
	opts, err := jobs.ParseOptions(req.Options)
	if err != nil {
		return spec, req, &Error{Code: CodeInvalidInput, Detail: "The options are not valid.",
			Fields: []jobs.FieldError{{Field: "options", Code: jobs.CodeInvalidValue, Detail: err.Error()}}}
	}
	info := snap.info[spec.ID]
	if info == nil {
		return spec, req, noWorker(spec, lane)
	}
	in, ferr := jobs.ParseInputs(&info.Schema, req.Inputs, spec.MaxBatchSize, opts.Mode(received))
	if ferr != nil {
		return spec, req, inputError(ferr)
	}
	req.rows = len(in.Rows)
	if n := int64(req.rows); n > 1 { // a list counts one per row; auth charged the first
		if err := s.charge(c, n-1); err != nil {
			return spec, req, err
		}
	}
	if snap.readyWorkers(spec.ID, lane) == 0 {
		return spec, req, noWorker(spec, lane)
	}
	return spec, req, s.checkRoom()
}

func noWorker(spec registry.Spec, lane jobs.Lane) *Error {
	return &Error{Code: CodeNoReadyWorker, RetryAfter: retryAfterNoWorker,
		Detail: fmt.Sprintf("No worker is ready to serve model %s on the %s lane (pool %s); see GET /api/v1/models/%s/health.", spec.ID, lane, spec.Pool, spec.ID)}
}

// readJSON checks the media type, charset and coding, and reads the body
// (decompressed) within the size limit. A read that fails for the body's
// own reason (its deadline, broken gzip) is answered with that reason by
// guardBody.
func (s *Server) readJSON(c echo.Context) ([]byte, error) {
	ct := c.Request().Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, errorf(CodeUnsupportedMedia, "Send the body as application/json, not %q.", ct)
	}
	if err := checkCharset(params); err != nil {
		return nil, err
	}
	r, err := s.content(c)
	if err != nil {
		return nil, err
	}
	if c.Request().ContentLength > s.cfg.MaxBodyBytes { // refused before reading any of it
		return nil, s.bodyTooLarge()
	}
	// Too wide a body is refused as soon as its first object is (see
	// jobs.CheckBodyWidth): the rest is never read, and the connection
	// closes rather than drain it.
	var width jobs.BodyWidth
	body, err := io.ReadAll(io.TeeReader(io.LimitReader(r, s.cfg.MaxBodyBytes+1), &width))
	if wide, ok := errors.AsType[*jobs.Error](err); ok {
		c.Response().Header().Set(echo.HeaderConnection, "close")
		return nil, inputError(wide)
	}
	if err != nil {
		return nil, errorf(CodeBadRequest, "The body could not be read.")
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return nil, s.bodyTooLarge()
	}
	if !utf8.Valid(body) {
		return nil, utf8Error(body, "The body")
	}
	return body, nil
}

func (s *Server) bodyTooLarge() *Error {
	return errorf(CodeTooLarge, "The body is over the %d-byte limit; send large inputs as a batch.", s.cfg.MaxBodyBytes)
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%q must be %s, not %s", te.Field, te.Type.Kind(), te.Value)
	}
	return err.Error()
}

// inputError is the 422 of inputs the model's schema refuses.
func inputError(e *jobs.Error) *Error {
	return &Error{Code: CodeInvalidInput, Detail: e.Detail, Fields: e.Fields}
}

// enqueue puts the task on the pool's lane, records the job for lookups and
// wakes an idle worker. An async job takes its place in its tenant's
// window, or waits in the tenant's line for one (see internal/queue's
// fair.go).
func (s *Server) enqueue(c echo.Context, spec registry.Spec, p jobs.PredictPayload, lane jobs.Lane) error {
	ctx := c.Request().Context()
	queueName := jobs.Queue(spec.Pool, lane)
	c.Set("queue", queueName)
	ttl := s.cfg.retention(lane)
	task, err := jobs.NewPredictTask(p, jobs.TaskOptions{Pool: spec.Pool, Lane: lane, Retention: ttl, MaxRetry: 3})
	if err != nil {
		return err
	}
	rec, _ := json.Marshal(jobs.JobRecord{Queue: queueName, Tenant: p.Tenant, ModelID: spec.ID, CreatedAt: p.EnqueuedAt})
	var fair *queue.Fair
	if lane == jobs.LaneAsync {
		fair = &queue.Fair{Pool: spec.Pool, Tenant: p.Tenant, Window: s.asyncWindow(spec, p.Tenant), TTL: 2 * ttl}
	}
	err = s.put(ctx, p.RequestID, task, spec.Pool, lane, fair, func(pl redis.Pipeliner) {
		// asynq keeps a result ttl from completion; the record lives
		// twice that so a job that waited in the queue can still be found by
		// id for as long as its result exists.
		pl.Set(ctx, jobs.JobKey(p.RequestID), rec, 2*ttl)
	})
	if err != nil {
		s.metrics.enqueue.WithLabelValues(queueName).Inc()
		return s.unavailable(c, err)
	}
	return nil
}

// asyncWindow is how many async jobs of tenant may be in spec's queue at
// once: twice the task slots of the workers serving it, so a tenant alone
// keeps every slot busy with the next job waiting, times the tenant's
// weight. Tenants with more waiting take turns in the queue, each in
// proportion to its window.
func (s *Server) asyncWindow(spec registry.Spec, tenant string) int {
	return 2 * max(1, s.state.get().readySlots(spec.ID, jobs.LaneAsync)) * s.weight(tenant)
}

// put enqueues task (id) on the pool's lane with the commands records
// queues, and wakes an idle worker; with fair, within its tenant's window
// (whose admission wakes a worker itself, when it queued something).
func (s *Server) put(ctx context.Context, id string, task *asynq.Task, pool string, lane jobs.Lane, fair *queue.Fair, records func(redis.Pipeliner)) error {
	var replicated func() error
	followUp := func(pl redis.Pipeliner) {
		records(pl)
		if fair == nil {
			queue.Wake(ctx, pl, pool, lane)
		}
		replicated = s.cfg.Durability.Wait(ctx, pl) // last: it covers the task and its record
	}
	var err error
	if fair != nil {
		_, err = queue.EnqueueFair(ctx, s.client, task, *fair, followUp)
	} else {
		_, err = queue.Enqueue(ctx, s.client, task, followUp)
	}
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// Task ids are ours and new, so the task is there already: go-redis
		// sent the round trip again after losing its answer (Redis
		// restarting, say), and the follow-ups went again with it.
		s.log.Info("enqueue answered by a retry; the task was queued", "task_id", id)
		err = nil
	}
	if errors.Is(err, queue.ErrFollowUp) {
		// The task exists, and will run; without its record the job could
		// not be looked up (404) nor its tenant checked. Both follow-ups
		// may be sent twice, so send them once more before giving up.
		s.log.Warn("enqueue follow-up failed; sending it again", "task_id", id, "err", err.Error())
		_, err = s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error { followUp(pl); return nil })
	}
	if err == nil {
		err = replicated()
	}
	return err
}

// answer turns a worker's outcome into the HTTP response.
func (s *Server) answer(c echo.Context, o jobs.Outcome) error {
	if o.Error == nil {
		return c.JSONBlob(http.StatusOK, o.Body)
	}
	return workerError(o.Error)
}

// workerError maps a failure stored by a worker to the API's codes.
func workerError(e *jobs.Error) *Error {
	switch e.Code {
	case jobs.CodeInvalidInput:
		return inputError(e)
	case CodeQueueUnavailable: // a predict group's enqueue failed (see enqueueGroup)
		return &Error{Code: CodeQueueUnavailable, Detail: e.Detail, RetryAfter: retryAfterUnavailable}
	case CodeQueueFull:
		return queueFull()
	default:
		return &Error{Code: CodeInternal, Detail: e.Detail}
	}
}

// storedOutcome reads a finished job's outcome, if it has one: its task's
// result, or a grouped job's own (see jobs.ResultKey).
func (s *Server) storedOutcome(queue, id string, grouped bool) (jobs.Outcome, bool) {
	var o jobs.Outcome
	if grouped {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		b, err := s.rdb.Get(ctx, jobs.ResultKey(id)).Bytes()
		return o, err == nil && json.Unmarshal(b, &o) == nil
	}
	info, err := s.insp.GetTaskInfo(queue, id)
	if err != nil || len(info.Result) == 0 {
		return o, false
	}
	return o, json.Unmarshal(info.Result, &o) == nil
}

// callerGone marks job id as wanted by nobody, so a worker that picks it
// up after its deadline drops it. Should the mark be lost (Redis down), the
// job runs anyway: wasted work, not a broken promise.
func (s *Server) callerGone(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.rdb.Set(ctx, jobs.CallerGoneKey(id), 1, s.cfg.RetentionSync).Err(); err != nil {
		s.log.Info("could not mark a left caller's job", "request_id", id, "err", err.Error())
	}
}

// timedOut answers 504 with the job's status URL. It writes nothing: a
// job whose caller did not leave runs whenever a worker picks it up, so
// the URL's job completes even if Redis was unreachable just now.
func (s *Server) timedOut(c echo.Context, id string) error {
	url := "/api/v1/jobs/" + id
	c.Response().Header().Set("Location", url)
	return &Error{Code: CodeTimeout, Detail: "The prediction did not finish in time; it is still queued or running. Poll status_url for the result.",
		Extra: map[string]any{"status_url": url}}
}

// preferences are the parts of RFC 7240 Prefer headers predict honours.
type preferences struct {
	async bool
	wait  time.Duration
}

func parsePrefer(values []string) preferences {
	var p preferences
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "respond-async":
				p.async = true
			case "wait":
				if n, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(val), `"`), 64); err == nil && n > 0 {
					p.wait = time.Duration(n * float64(time.Second))
				}
			}
		}
	}
	return p
}
