package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Job statuses as clients see them.
const (
	statusQueued    = "queued"
	statusRunning   = "running"
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusCanceled  = "canceled"
)

// jobResponse is GET /api/v1/jobs/:id.
type jobResponse struct {
	RequestID   string          `json:"request_id"`
	ModelID     string          `json:"model_id"`
	Status      string          `json:"status"`
	CreatedAt   time.Time       `json:"created_at"`
	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	CanceledAt  *time.Time      `json:"canceled_at,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       *jobs.Error     `json:"error,omitempty"`
}

// record reads a job's record and hides other tenants' jobs behind 404.
func (s *Server) record(c echo.Context) (jobs.JobRecord, error) {
	var rec jobs.JobRecord
	b, err := s.rdb.Get(c.Request().Context(), jobs.JobKey(c.Param("id"))).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return rec, errorf(CodeJobNotFound, "Job %s not found.", c.Param("id"))
	case err != nil:
		return rec, s.unavailable(c, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Tenant != tenantOf(c) {
		return rec, errorf(CodeJobNotFound, "Job %s not found.", c.Param("id"))
	}
	return rec, nil
}

// describe builds a job's status from its record and asynq's task state.
func (s *Server) describe(c echo.Context, rec jobs.JobRecord) (jobResponse, *asynq.TaskInfo, error) {
	id := c.Param("id")
	out := jobResponse{RequestID: id, ModelID: rec.ModelID, CreatedAt: time.UnixMilli(rec.CreatedAt).UTC()}
	if rec.CanceledAt != 0 {
		t := time.UnixMilli(rec.CanceledAt).UTC()
		out.Status, out.CanceledAt = statusCanceled, &t
		return out, nil, nil
	}
	task := id
	if rec.Task != "" { // it rides in a predict group: that task's state, its own result
		task = rec.Task
	}
	info, err := s.insp.GetTaskInfo(rec.Queue, task)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
		// An async job waiting for room in its tenant's window has no task yet.
		if held, herr := s.rdb.Exists(c.Request().Context(), jobs.HeldKey(jobs.PoolOf(rec.Queue), id)).Result(); herr != nil {
			return out, nil, s.unavailable(c, herr)
		} else if held == 1 {
			out.Status = statusQueued
			return out, nil, nil
		}
		return out, nil, errorf(CodeJobNotFound, "Job %s not found; its result may have expired.", id)
	case err != nil:
		return out, nil, s.unavailable(c, err)
	}
	switch info.State {
	case asynq.TaskStateActive:
		out.Status = statusRunning
	case asynq.TaskStateCompleted:
		out.Status = statusSucceeded
	case asynq.TaskStateArchived:
		out.Status = statusFailed
	default: // pending, scheduled, retry, aggregating
		out.Status = statusQueued
	}
	if !info.CompletedAt.IsZero() {
		t := info.CompletedAt.UTC()
		out.CompletedAt = &t
	}
	result := info.Result
	if rec.Task != "" {
		if result, err = s.rdb.Get(c.Request().Context(), jobs.ResultKey(id)).Bytes(); err != nil && !errors.Is(err, redis.Nil) {
			return out, nil, s.unavailable(c, err)
		}
	}
	var o jobs.Outcome
	if len(result) > 0 && json.Unmarshal(result, &o) == nil {
		out.Result, out.Error = o.Body, o.Error
		switch {
		case o.Error != nil && (o.Error.Code == jobs.OutcomeCanceled || o.Error.Code == jobs.OutcomeCallerGone):
			out.Status = statusCanceled
		case o.Error != nil: // a group member's own failure, in a task that completed
			out.Status = statusFailed
		}
	} else if out.Status == statusFailed {
		out.Error = &jobs.Error{Code: CodeInternal, Detail: "The job failed after its retries."}
	}
	return out, info, nil
}

// getJob answers GET /api/v1/jobs/:id.
func (s *Server) getJob() echo.HandlerFunc {
	return func(c echo.Context) error {
		rec, err := s.record(c)
		if err != nil {
			return err
		}
		out, _, err := s.describe(c, rec)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// cancelJob answers DELETE /api/v1/jobs/:id: queued work is removed, running
// work is interrupted; finished jobs answer 409.
func (s *Server) cancelJob() echo.HandlerFunc {
	return func(c echo.Context) error {
		rec, err := s.record(c)
		if err != nil {
			return err
		}
		out, info, err := s.describe(c, rec)
		if err != nil {
			return err
		}
		switch out.Status {
		case statusCanceled:
			return c.JSON(http.StatusOK, out)
		case statusSucceeded, statusFailed:
			return errorf(CodeConflict, "Job %s already %s; there is nothing to cancel.", out.RequestID, out.Status)
		}
		// Mark first: a running task that is interrupted comes back as a retry,
		// and the worker drops retries of canceled jobs.
		rec.CanceledAt = time.Now().UnixMilli()
		b, _ := json.Marshal(rec)
		if err := s.rdb.Set(c.Request().Context(), jobs.JobKey(out.RequestID), b, redis.KeepTTL).Err(); err != nil {
			return s.unavailable(c, err)
		}
		switch {
		case info == nil: // waiting for room: gone from the line, it is never queued
			err = s.rdb.Unlink(c.Request().Context(), jobs.HeldKey(jobs.PoolOf(rec.Queue), out.RequestID)).Err()
		case info.State == asynq.TaskStateActive:
			err = s.insp.CancelProcessing(out.RequestID)
		default:
			err = s.insp.DeleteTask(rec.Queue, out.RequestID)
		}
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			s.log.Warn("cancel did not reach the task", "request_id", out.RequestID, "err", err.Error())
		}
		t := time.UnixMilli(rec.CanceledAt).UTC()
		out.Status, out.CanceledAt, out.CompletedAt, out.Result, out.Error = statusCanceled, &t, nil, nil, nil
		return c.JSON(http.StatusOK, out)
	}
}
