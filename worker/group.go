package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// member is one caller of a predict group as the worker handles it: its
// validated inputs and where its rows sit in the group's block, or the
// failure it is answered with instead.
type member struct {
	p    jobs.PredictPayload
	in   jobs.Inputs
	at   int // its first row in the block
	body []byte
	fail *jobs.Error
	span trace.Span
}

// handlePredictGroup runs a predict-group task: each member is checked on
// its own (as handlePredict checks a predict), the rows of the valid ones
// are scored as one block, and each member's own outcome is stored and
// replied. One member's bad input or row fails that member alone. The task
// itself fails, and is retried whole, only when the outcomes cannot be
// stored: scoring is a pure function of the payload, so that is safe.
func (w *Worker) handlePredictGroup(ctx context.Context, t *asynq.Task) error {
	start := time.Now()
	g, err := jobs.DecodePredictGroup(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	first := g.Members[0]
	note := noteOf(ctx)
	note.modelID, note.enqueuedAt, note.members = first.ModelID, first.EnqueuedAt, len(g.Members)
	m, ok := w.model(first.ModelID)
	if !ok {
		return fmt.Errorf("model %s is not loaded on worker %s", first.ModelID, w.cfg.ID)
	}
	opts, oerr := jobs.ParseOptions(first.Options)
	ms := make([]member, len(g.Members))
	var rows []jobs.Row
	for i, p := range g.Members {
		mb := &ms[i]
		mb.p = p
		_, mb.span = w.traceTask(ctx, p, start)
		gone, err := w.abandoned(ctx, p)
		switch {
		case err != nil:
			return err
		case gone != nil:
			mb.fail = gone
		case oerr != nil:
			mb.fail = &jobs.Error{Code: jobs.CodeInvalidInput, Detail: oerr.Error()}
		default:
			mb.in, mb.fail = jobs.ParseInputs(&m.info.Schema, p.Inputs, m.spec.MaxBatchSize, opts.Mode(time.UnixMilli(p.EnqueuedAt)))
		}
		if mb.fail == nil {
			w.metrics.warned(p.ModelID, &m.info.Schema, mb.in.Warnings)
			mb.at = len(rows)
			rows = append(rows, mb.in.Rows...)
		}
	}
	note.rows = len(rows)
	began := time.Now()
	w.scoreMembers(m, ms, rows, opts.WantExplain())
	took := time.Since(began)
	w.metrics.rows(first.ModelID, took, len(rows))
	w.meterMembers(ms, took, len(rows))
	return w.finishGroup(ctx, g, ms)
}

// meterMembers counts each member's usage, as a lone predict's: its rows
// when scored, and its rows' share of the block's compute.
func (w *Worker) meterMembers(ms []member, took time.Duration, rows int) {
	for i := range ms {
		mb := &ms[i]
		n := len(mb.in.Rows)
		if n == 0 {
			continue
		}
		used := usage.Counts{Compute: took * time.Duration(n) / time.Duration(rows)}
		if mb.fail == nil {
			used.Rows = int64(n)
		}
		w.usage.Add(mb.p.Tenant, mb.p.KeyID, mb.p.ModelID, used)
	}
}

// scoreMembers scores the rows of every member not yet failed as one
// block, and writes each one's body. Should the block fail, each member is
// scored on its own, so a row the model cannot score fails only its caller.
func (w *Worker) scoreMembers(m loaded, ms []member, rows []jobs.Row, explain bool) {
	if len(rows) == 0 {
		return
	}
	preds, err := m.model.Predict(rows, explain)
	for i := range ms {
		mb := &ms[i]
		if mb.fail != nil {
			continue
		}
		var mine []any
		perr := err
		if err == nil {
			mine = preds[mb.at : mb.at+len(mb.in.Rows)]
		} else {
			mine, perr = m.model.Predict(mb.in.Rows, explain)
		}
		if perr == nil {
			mb.body, perr = predictBody(mb.p, m.info.Revision, mine, mb.in)
		}
		if perr != nil {
			w.log.Error("predict failed", "request_id", mb.p.RequestID, "model_id", mb.p.ModelID, "err", perr.Error())
			mb.fail = &jobs.Error{Code: jobs.OutcomeModelFailed, Detail: "The model could not score this input."}
		}
	}
}

// finishGroup stores each member's outcome under its own id, for as long
// as a predict's result lives, and sends them all to the waiting API
// process in one message, in one round trip.
func (w *Worker) finishGroup(ctx context.Context, g jobs.PredictGroup, ms []member) error {
	var msg []byte
	outs := make([][]byte, len(ms))
	for i := range ms {
		b, err := jobs.EncodeOutcome(jobs.Outcome{RequestID: ms[i].p.RequestID, Body: ms[i].body, Error: ms[i].fail})
		if err != nil {
			return err
		}
		outs[i] = b
		msg = jobs.AppendReply(msg, b)
	}
	ttl := time.Duration(g.RetentionSeconds) * time.Second
	replyTo := g.Members[0].ReplyTo
	err := w.storeAndReply(ctx, func(pl redis.Pipeliner) {
		for i := range ms {
			pl.Set(ctx, jobs.ResultKey(ms[i].p.RequestID), outs[i], ttl)
		}
	}, replyTo, msg, nil)
	for i := range ms {
		ms[i].span.End()
	}
	if err != nil {
		return fmt.Errorf("store results of a group of %d: %w", len(ms), err)
	}
	return nil
}
