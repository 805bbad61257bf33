package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/jsonw"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// The old API's metadata, which partners' code reads: its API version and
// how the model ran (in the worker's own process: "local", as the old API
// said of models it ran itself).
const (
	APIVersion      = "1.0"
	InferenceMethod = "local"
)

// handlePredict runs one predict task. Results are a pure function of the
// payload and the model revision, so a task delivered twice writes the same
// outcome twice: the write is idempotent.
func (w *Worker) handlePredict(ctx context.Context, t *asynq.Task) error {
	start := time.Now()
	p, err := jobs.DecodePredict(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	note := noteOf(ctx)
	note.requestID, note.tenant, note.modelID, note.enqueuedAt, note.members = p.RequestID, p.Tenant, p.ModelID, p.EnqueuedAt, 1
	ctx, span := w.traceTask(ctx, p, start)
	defer span.End()
	if gone, err := w.abandoned(ctx, p); err != nil {
		return err
	} else if gone != nil {
		note.outcome = gone.Code
		return w.finish(ctx, p, nil, gone)
	}
	m, ok := w.model(p.ModelID)
	if !ok {
		// Not ours (the registry moved the model, or it failed to load here):
		// hand it back for a worker that has it.
		return fmt.Errorf("model %s is not loaded on worker %s", p.ModelID, w.cfg.ID)
	}
	opts, oerr := jobs.ParseOptions(p.Options)
	if oerr != nil {
		note.outcome = jobs.CodeInvalidInput
		return w.finish(ctx, p, nil, &jobs.Error{Code: jobs.CodeInvalidInput, Detail: oerr.Error()})
	}
	in, ferr := jobs.ParseInputs(&m.info.Schema, p.Inputs, m.spec.MaxBatchSize, opts.Mode(time.UnixMilli(p.EnqueuedAt)))
	if ferr != nil {
		note.outcome = ferr.Code
		return w.finish(ctx, p, nil, ferr)
	}
	w.metrics.warned(p.ModelID, &m.info.Schema, in.Warnings)
	note.rows = len(in.Rows)
	inference, began := w.span(ctx, "inference"), time.Now()
	preds, err := m.model.Predict(in.Rows, opts.WantExplain())
	took := time.Since(began)
	w.metrics.rows(p.ModelID, took, len(in.Rows))
	used := usage.Counts{Compute: took}
	if err == nil {
		used.Rows = int64(len(preds))
	}
	w.usage.Add(p.Tenant, p.KeyID, p.ModelID, used)
	inference.End()
	if err != nil {
		note.outcome = jobs.OutcomeModelFailed
		w.log.Error("predict failed", "request_id", p.RequestID, "model_id", p.ModelID, "err", err.Error())
		return w.finish(ctx, p, nil, &jobs.Error{Code: jobs.OutcomeModelFailed, Detail: "The model could not score this input."})
	}
	body, err := predictBody(p, m.info.Revision, preds, in)
	if err != nil {
		return fmt.Errorf("encode prediction: %w", err)
	}
	return w.finish(ctx, p, body, nil)
}

// predictBody writes the predict response partners get, by hand rather
// than through reflection (it is written once per request):
//
//	{"model_id", "predictions": one object or a list, "metadata":
//	 {"api_version", "inference_method", "request_id", "model_revision",
//	  "rows", "warnings"}, "timestamp"}
//
// The timestamp has milliseconds and a Z, as the old API wrote it.
func predictBody(p jobs.PredictPayload, revision string, preds []any, in jobs.Inputs) ([]byte, error) {
	list := in.List
	b := make([]byte, 0, 384*len(preds)+256)
	b = append(b, `{"model_id":`...)
	b = jsonw.String(b, p.ModelID)
	b = append(b, `,"predictions":`...)
	if list {
		b = append(b, '[')
	}
	var err error
	for i, v := range preds {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendValue(b, v); err != nil {
			return nil, err
		}
	}
	if list {
		b = append(b, ']')
	}
	b = append(b, `,"metadata":{"api_version":`...)
	b = jsonw.String(b, APIVersion)
	b = append(b, `,"inference_method":`...)
	b = jsonw.String(b, InferenceMethod)
	b = append(b, `,"request_id":`...)
	b = jsonw.String(b, p.RequestID)
	b = append(b, `,"model_revision":`...)
	b = jsonw.String(b, revision)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, int64(len(preds)), 10)
	b = append(b, `,"warnings":`...)
	b = appendWarnings(b, in.Warnings)
	b = append(b, `},"timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, timestampFormat)
	return append(b, `"}`...), nil
}

// timestampFormat is the old API's: milliseconds, UTC as Z.
const timestampFormat = "2006-01-02T15:04:05.000Z"

// appendWarnings appends warnings as a JSON list, [] when there are none.
func appendWarnings(b []byte, warns []jobs.Warning) []byte {
	b = append(b, '[')
	for i, w := range warns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if w.Row != nil {
			b = append(b, `"row":`...)
			b = strconv.AppendInt(b, int64(*w.Row), 10)
			b = append(b, ',')
		}
		b = append(b, `"field":`...)
		b = jsonw.String(b, w.Field)
		b = append(b, `,"code":`...)
		b = jsonw.String(b, w.Code)
		b = append(b, `,"detail":`...)
		b = jsonw.String(b, w.Detail)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendValue appends one prediction: through its own AppendJSON when it
// has one (the engine's predictions do), else encoding/json.
func appendValue(b []byte, v any) ([]byte, error) {
	if a, ok := v.(interface{ AppendJSON([]byte) ([]byte, error) }); ok {
		return a.AppendJSON(b)
	}
	j, err := json.Marshal(v)
	return append(b, j...), err
}

// abandoned decides whether nobody wants this task's result any more: a sync
// caller who left before its deadline, picked up after it (a caller
// answered 504 was told to poll, and gets its result), or a job its tenant
// canceled. Only late or retried tasks pay a Redis read for it.
func (w *Worker) abandoned(ctx context.Context, p jobs.PredictPayload) (*jobs.Error, error) {
	if retried, _ := asynq.GetRetryCount(ctx); retried > 0 {
		b, err := w.rdb.Get(ctx, jobs.JobKey(p.RequestID)).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		var rec jobs.JobRecord
		if err == nil && json.Unmarshal(b, &rec) == nil && rec.CanceledAt != 0 {
			return &jobs.Error{Code: jobs.OutcomeCanceled, Detail: "The job was canceled."}, nil
		}
	}
	if p.Deadline == 0 || time.Now().UnixMilli() <= p.Deadline {
		return nil, nil
	}
	n, err := w.rdb.Exists(ctx, jobs.CallerGoneKey(p.RequestID)).Result()
	if err != nil || n == 0 {
		return nil, err
	}
	return &jobs.Error{Code: jobs.OutcomeCallerGone, Detail: "The caller left before a worker was free; submit it as an async job to let it run."}, nil
}

// finish stores the outcome as the task's result, tells a waiting API
// process, and turns a failure into a final (not retried) task error.
func (w *Worker) finish(ctx context.Context, p jobs.PredictPayload, body []byte, fail *jobs.Error) error {
	b, err := jobs.EncodeOutcome(jobs.Outcome{RequestID: p.RequestID, Body: body, Error: fail})
	if err != nil {
		return err
	}
	q, _ := asynq.GetQueueName(ctx)
	var release *queue.FairRelease
	err = w.storeAndReply(ctx, func(pl redis.Pipeliner) {
		// Where asynq's ResultWriter stores it.
		queue.StoreResult(ctx, pl, q, p.RequestID, b)
	}, p.ReplyTo, b, func(pl redis.Pipeliner) {
		if q == jobs.Queue(w.cfg.Pool, jobs.LaneAsync) {
			// Its place in its tenant's window goes to the tenant's next.
			release = queue.ReleaseFair(ctx, pl, w.cfg.Pool, p.Tenant, p.RequestID)
		}
	})
	if err != nil {
		return fmt.Errorf("store result of %s: %w", p.RequestID, err)
	}
	if release != nil {
		if err := release.Done(ctx, w.rdb); err != nil {
			w.log.Warn("async window not released; the reap will", "request_id", p.RequestID, "err", err.Error())
		}
	}
	if fail != nil {
		return fmt.Errorf("%s: %w", fail.Code, asynq.SkipRetry)
	}
	return nil
}
