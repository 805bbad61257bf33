// Running schedules: every API process looks for due schedules each
// scheduleTick; for each, one process wins the claim (schedule.ClaimDue, a
// compare-and-set of its next time in Redis) and starts the run's S3
// batch as the schedule's key would submit it.

package api

import (
	"context"
	"errors"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/schedule"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// scheduleTick is how often due schedules are looked for: a run starts
// within about this much of its time.
const scheduleTick = time.Second

// dueBatch bounds the schedules one look starts; the rest wait a tick.
const dueBatch = 100

// runSchedules starts due schedules' runs until ctx ends.
func (s *Server) runSchedules(ctx context.Context) {
	every(ctx, scheduleTick, func() { s.fireDue(ctx, time.Now()) })
}

// fireDue claims and starts the runs due at now.
func (s *Server) fireDue(ctx context.Context, now time.Time) {
	won, err := schedule.ClaimDue(ctx, s.rdb, now, dueBatch)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("schedules not claimed", "err", err.Error())
	}
	for _, f := range won {
		log := s.log.With("schedule_id", f.ID, "tenant", f.Tenant)
		if f.At.IsZero() {
			log.Info("schedule's missed runs skipped", "missed_since", f.Since)
			continue
		}
		run := s.startRun(ctx, f)
		if run.Error != nil {
			log.Warn("schedule run refused", "scheduled_for", run.ScheduledFor, "code", run.Error.Code, "detail", run.Error.Detail)
		} else {
			log.Info("schedule run started", "scheduled_for", run.ScheduledFor, "batch_id", run.BatchID, "late_ms", now.Sub(f.At).Milliseconds())
		}
		if err := schedule.Record(ctx, s.rdb, f.ID, run); err != nil && ctx.Err() == nil {
			log.Warn("schedule run not recorded", "err", err.Error())
		}
	}
}

// startRun submits the S3 batch of sch's run scheduled at at, as its key
// would: counted as one request against the key's and tenant's limits,
// its rows against their batch row quotas.
func (s *Server) startRun(ctx context.Context, f schedule.Firing) schedule.Run {
	sch := f.Schedule
	run := schedule.Run{ScheduledFor: f.At.UTC(), FiredAt: time.Now().UTC()}
	refuse := func(e *Error) schedule.Run {
		run.Error = &jobs.BatchError{Code: e.Code, Detail: e.Detail}
		return run
	}
	key, err := apikey.ByID(ctx, s.rdb, sch.KeyID)
	switch {
	case errors.Is(err, apikey.ErrUnknown) || (err == nil && key.Tenant != sch.Tenant):
		return refuse(errorf(CodeUnauthorized, "The API key that created the schedule was revoked; create the schedule again with a live key."))
	case err != nil:
		return refuse(queueUnavailable())
	}
	spec, ok := s.state.get().models[sch.ModelID]
	if !ok {
		return refuse(errorf(CodeModelNotFound, "Model %s not found.", sch.ModelID))
	}
	d, err := s.limits.takes.Take(ctx, s.buckets(key), 1, time.Now())
	if err != nil {
		if e := s.notCounted(func() error { return queueUnavailable() }, "rate limits not checked", "schedule_id", sch.ID, "err", err.Error()); e != nil {
			return refuse(queueUnavailable())
		}
	} else if !d.Allowed {
		return refuse(errorf(CodeRateLimited, "Rate limit exceeded: the %s's limit is %s requests, and the run would pass it.", d.Binding.Policy, d.Binding.Limit))
	}
	u, rec := s.newUpload(ctx, key, spec, time.Now())
	src := runSource(sch.InputURL, sch.OutputURL, sch.Format, f.Timing, f.At)
	u.s3 = &src
	rec[jobs.BatchFieldSchedule] = sch.ID
	err = u.s3Batch(rec, sch.CallbackURL)
	if err == nil {
		err = u.enqueueS3()
	}
	if err != nil {
		u.abandon()
		if e, ok := errors.AsType[*Error](err); ok {
			return refuse(e)
		}
		return refuse(queueUnavailable())
	}
	run.BatchID = u.id
	return run
}
