// Schedules: recurring S3 batches. POST, GET and DELETE
// /api/v1/schedules define them; every API process looks for due ones
// (schedule_run.go).

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/schedule"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// scheduleRequest is POST /api/v1/schedules.
type scheduleRequest struct {
	ModelID  string `json:"model_id"`
	Cron     string `json:"cron"`
	TimeZone string `json:"time_zone"`
	// InputURL and OutputURL may hold {{date}} (the run's scheduled date
	// in TimeZone, YYYY-MM-DD) and {{time}} (its time there, HHMM).
	InputURL    string `json:"input_url"`
	OutputURL   string `json:"output_url"`
	Format      string `json:"format"`
	CallbackURL string `json:"callback_url"`
}

// schedulesResponse is GET /api/v1/schedules.
type schedulesResponse struct {
	Schedules []schedule.Listed `json:"schedules"`
}

func scheduleInvalid(field, detail string) *Error {
	return &Error{Code: CodeInvalidInput, Detail: "The schedule is not valid.",
		Fields: []jobs.FieldError{{Field: field, Code: jobs.CodeInvalidValue, Detail: detail}}}
}

// createSchedule answers POST /api/v1/schedules: 201 with the schedule and
// its next run.
func (s *Server) createSchedule() echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := s.readJSON(c)
		if err != nil {
			return err
		}
		var req scheduleRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return errorf(CodeBadRequest, "The body must be a schedule object: %s.", jsonProblem(err))
		}
		if _, ok := s.state.get().models[req.ModelID]; !ok {
			return errorf(CodeModelNotFound, "Model %.64q not found.", req.ModelID)
		}
		timing, err := schedule.ParseTiming(req.Cron, req.TimeZone)
		if errors.Is(err, schedule.ErrTimeZone) {
			return scheduleInvalid("time_zone", err.Error())
		} else if err != nil {
			return scheduleInvalid("cron", err.Error())
		}
		for field, tmpl := range map[string]string{"input_url": req.InputURL, "output_url": req.OutputURL} {
			if err := schedule.CheckTemplate(tmpl); err != nil {
				return scheduleInvalid(field, err.Error())
			}
		}
		if err := checkCallback(req.CallbackURL); err != nil {
			return err
		}
		// The locations as the next run reads them: a template that
		// expands to a bad or forbidden location is refused now.
		ctx := c.Request().Context()
		now := time.Now()
		next := timing.Next(now)
		if _, err := s.s3Locations(ctx, tenantOf(c), runSource(req.InputURL, req.OutputURL, req.Format, timing, next)); err != nil {
			if e, ok := errors.AsType[*Error](err); ok {
				return e
			}
			return s.unavailable(c, err)
		}
		key, _ := c.Get("key").(apikey.Record)
		sch := schedule.Schedule{ID: jobs.NewRequestID(), Tenant: key.Tenant, KeyID: key.ID, ModelID: req.ModelID,
			Cron: strings.TrimSpace(req.Cron), TimeZone: timing.Zone().String(), InputURL: req.InputURL, OutputURL: req.OutputURL,
			Format: req.Format, CallbackURL: req.CallbackURL, CreatedAt: now.UTC().Truncate(time.Millisecond)}
		switch err := schedule.Create(ctx, s.rdb, sch, next); {
		case errors.Is(err, schedule.ErrTooMany):
			return errorf(CodeConflict, "The tenant has %d schedules, the most it may have; delete one first.", schedule.MaxPerTenant)
		case err != nil:
			return s.unavailable(c, err)
		}
		s.log.Info("schedule created", "schedule_id", sch.ID, "tenant", sch.Tenant, "cron", sch.Cron, "time_zone", sch.TimeZone)
		nextUTC := next.UTC()
		return c.JSON(http.StatusCreated, schedule.Listed{Schedule: sch, NextRun: &nextUTC, Runs: []schedule.Run{}})
	}
}

// runSource is a run's S3 request: the templates expanded for the run
// scheduled at at.
func runSource(input, output, format string, timing schedule.Timing, at time.Time) s3Source {
	return s3Source{input: schedule.Expand(input, at, timing.Zone()), output: schedule.Expand(output, at, timing.Zone()), format: format}
}

// listSchedules answers GET /api/v1/schedules: the caller's tenant's
// schedules, oldest first, each with its next run and latest runs.
func (s *Server) listSchedules() echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := schedule.List(c.Request().Context(), s.rdb, tenantOf(c))
		if err != nil {
			return s.unavailable(c, err)
		}
		slices.SortFunc(list, func(a, b schedule.Listed) int { return a.CreatedAt.Compare(b.CreatedAt) })
		return c.JSON(http.StatusOK, schedulesResponse{Schedules: list})
	}
}

// deleteSchedule answers DELETE /api/v1/schedules/:id: 204, or 404 for a
// schedule that is not the caller's tenant's. Batches it started go on.
func (s *Server) deleteSchedule() echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		ok, err := schedule.Delete(c.Request().Context(), s.rdb, tenantOf(c), id)
		if err != nil {
			return s.unavailable(c, err)
		}
		if !ok {
			return errorf(CodeScheduleNotFound, "Schedule %.64q not found.", id)
		}
		s.log.Info("schedule deleted", "schedule_id", id, "tenant", tenantOf(c))
		return c.NoContent(http.StatusNoContent)
	}
}
