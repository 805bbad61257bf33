package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/jsonw"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// APIVersion is reported in every prediction's metadata.
const APIVersion = "v1"

// Codes of failures a worker stores for a job.
const (
	codeInvalidInput = "invalid_input"
	codeCallerGone   = "caller_gone"
	codeCanceled     = "canceled"
	codeModelFailed  = "model_failed"
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
	note.requestID, note.tenant, note.modelID, note.enqueuedAt = p.RequestID, p.Tenant, p.ModelID, p.EnqueuedAt
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
	rows, list, ferr := parseInputs(m, p.Inputs)
	opts, oerr := jobs.ParseOptions(p.Options)
	if ferr == nil && oerr != nil {
		ferr = &jobs.Error{Code: codeInvalidInput, Detail: oerr.Error()}
	}
	if ferr != nil {
		note.outcome = ferr.Code
		return w.finish(ctx, p, nil, ferr)
	}
	note.rows = len(rows)
	inference, began := w.span(ctx, "inference"), time.Now()
	preds, err := m.model.Predict(rows, opts.WantExplain())
	w.metrics.rows(p.ModelID, time.Since(began), len(rows))
	inference.End()
	if err != nil {
		note.outcome = codeModelFailed
		w.log.Error("predict failed", "request_id", p.RequestID, "model_id", p.ModelID, "err", err.Error())
		return w.finish(ctx, p, nil, &jobs.Error{Code: codeModelFailed, Detail: "The model could not score this input."})
	}
	body, err := predictBody(p, m.info.Revision, preds, list)
	if err != nil {
		return fmt.Errorf("encode prediction: %w", err)
	}
	return w.finish(ctx, p, body, nil)
}

// predictBody writes the predict response partners get, by hand rather
// than through reflection (it is written once per request):
//
//	{"model_id", "predictions": one object or a list, "metadata":
//	 {"api_version", "request_id", "model_revision", "rows"}, "timestamp"}
func predictBody(p jobs.PredictPayload, revision string, preds []any, list bool) ([]byte, error) {
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
	b = append(b, `,"request_id":`...)
	b = jsonw.String(b, p.RequestID)
	b = append(b, `,"model_revision":`...)
	b = jsonw.String(b, revision)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, int64(len(preds)), 10)
	b = append(b, `},"timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), nil
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
// caller whose deadline passed without the API detaching the job (so the
// caller was never told to poll), or a job its tenant canceled. Only late or
// retried tasks pay a Redis read for it.
func (w *Worker) abandoned(ctx context.Context, p jobs.PredictPayload) (*jobs.Error, error) {
	if retried, _ := asynq.GetRetryCount(ctx); retried > 0 {
		b, err := w.rdb.Get(ctx, jobs.JobKey(p.RequestID)).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		var rec jobs.JobRecord
		if err == nil && json.Unmarshal(b, &rec) == nil && rec.CanceledAt != 0 {
			return &jobs.Error{Code: codeCanceled, Detail: "The job was canceled."}, nil
		}
	}
	if p.Deadline == 0 || time.Now().UnixMilli() <= p.Deadline {
		return nil, nil
	}
	n, err := w.rdb.Exists(ctx, jobs.DetachedKey(p.RequestID)).Result()
	if err != nil {
		return nil, err
	}
	if n == 1 {
		return nil, nil
	}
	return &jobs.Error{Code: codeCallerGone, Detail: "The caller stopped waiting before a worker was free; submit it as an async job to let it run."}, nil
}

// parseInputs validates the caller's inputs (one object, or a list of up to
// the model's max_batch_size objects) against the loaded model's schema.
func parseInputs(m loaded, raw json.RawMessage) (rows []jobs.Row, list bool, _ *jobs.Error) {
	var objs []map[string]any
	raw = bytes.TrimSpace(raw)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) > 0 && raw[0] == '[' {
		list = true
		if err := dec.Decode(&objs); err != nil {
			return nil, true, &jobs.Error{Code: codeInvalidInput, Detail: "inputs must be an object or a list of objects."}
		}
	} else {
		var one map[string]any
		if err := dec.Decode(&one); err != nil || one == nil {
			return nil, false, &jobs.Error{Code: codeInvalidInput, Detail: "inputs must be an object or a list of objects."}
		}
		objs = []map[string]any{one}
	}
	if len(objs) == 0 || len(objs) > m.spec.MaxBatchSize {
		return nil, list, &jobs.Error{Code: codeInvalidInput, Detail: fmt.Sprintf("inputs must hold 1 to %d rows, not %d.", m.spec.MaxBatchSize, len(objs))}
	}
	schema := &m.info.Schema
	rows = make([]jobs.Row, len(objs))
	var all []jobs.FieldError
	for i, obj := range objs {
		row, errs := schema.Validate(obj)
		for _, e := range errs {
			if list {
				e.Row = &i
			}
			all = append(all, e)
		}
		rows[i] = row
	}
	if all != nil {
		return nil, list, &jobs.Error{Code: codeInvalidInput, Detail: "Some inputs do not match the model's schema.", Fields: all}
	}
	return rows, list, nil
}

// resultKey is the hash asynq v0.26 keeps a task in; its "result" field is
// what ResultWriter writes and Inspector.GetTaskInfo reads.
func resultKey(queue, taskID string) string { return "asynq:{" + queue + "}:t:" + taskID }

// finish stores the outcome as the task's result, tells a waiting API
// process, and turns a failure into a final (not retried) task error.
func (w *Worker) finish(ctx context.Context, p jobs.PredictPayload, body []byte, fail *jobs.Error) error {
	b, err := jobs.EncodeOutcome(jobs.Outcome{RequestID: p.RequestID, Body: body, Error: fail})
	if err != nil {
		return err
	}
	queue, _ := asynq.GetQueueName(ctx)
	cmds, err := w.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		// Where asynq's ResultWriter stores it, with the reply, in one round trip.
		pl.HSet(ctx, resultKey(queue, p.RequestID), "result", b)
		if p.ReplyTo != "" {
			pl.Publish(ctx, p.ReplyTo, b)
		}
		return nil
	})
	if len(cmds) > 0 && cmds[0].Err() != nil {
		return fmt.Errorf("store result of %s: %w", p.RequestID, cmds[0].Err())
	}
	if err != nil {
		// The result is stored; a caller that misses the reply reads it by id.
		w.log.Warn("reply publish failed", "request_id", p.RequestID, "err", err.Error())
	}
	if fail != nil {
		return fmt.Errorf("%s: %w", fail.Code, asynq.SkipRetry)
	}
	return nil
}
