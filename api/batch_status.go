// GET /api/v1/batches/:id: a batch's status, progress and webhook attempts.

package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// batchResponse is GET /api/v1/batches/:id.
type batchResponse struct {
	BatchID    string `json:"batch_id"`
	ModelID    string `json:"model_id"`
	Status     string `json:"status"`
	Format     string `json:"format"`
	RowsTotal  int    `json:"rows_total"`
	RowsDone   int    `json:"rows_done"`
	RowsFailed int    `json:"rows_failed"`
	// RowsWarned counts scored rows whose inputs lax parsing had to
	// assume something about (each row's warnings are in the results).
	RowsWarned  int            `json:"rows_warned"`
	Warnings    []jobs.Warning `json:"warnings"`
	ChunksTotal int            `json:"chunks_total"`
	ChunksDone  int            `json:"chunks_done"`
	CreatedAt   *time.Time     `json:"created_at"`
	StartedAt   *time.Time     `json:"started_at"`
	FinishedAt  *time.Time     `json:"finished_at"`
	CanceledAt  *time.Time     `json:"canceled_at,omitempty"`
	ETASeconds  *float64       `json:"eta_seconds"`
	CallbackURL string         `json:"callback_url,omitempty"`
	Webhook     *webhookStatus `json:"webhook,omitempty"`
	ResultsURL  string         `json:"results_url"`
	// An S3 batch's locations (its results, errors file and _SUCCESS
	// manifest are written under output_url), when its output was
	// written, and why it failed as a whole, if it did.
	InputURL   string           `json:"input_url,omitempty"`
	OutputURL  string           `json:"output_url,omitempty"`
	ExportedAt *time.Time       `json:"exported_at,omitempty"`
	Error      *jobs.BatchError `json:"error,omitempty"`
	// ScheduleID is the schedule whose run started the batch, if one did.
	ScheduleID string `json:"schedule_id,omitempty"`

	pool string // the model's pool when the batch was submitted
}

type webhookStatus struct {
	DeliveredAt *time.Time            `json:"delivered_at"`
	Attempts    []jobs.WebhookAttempt `json:"attempts"`
}

// batch reads a batch's record, hiding other tenants' batches behind 404.
func (s *Server) batch(c echo.Context) (*batchResponse, error) {
	ctx := c.Request().Context()
	id := c.Param("id")
	pl := s.rdb.Pipeline()
	recCmd := pl.HGetAll(ctx, jobs.BatchKey(id))
	doneCmd := pl.SCard(ctx, jobs.BatchDoneKey(id))
	hooksCmd := pl.LRange(ctx, jobs.BatchHooksKey(id), 0, -1)
	if _, err := pl.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.unavailable(c, err)
	}
	rec, ok := jobs.DecodeBatchRecord(recCmd.Val())
	if !ok || rec.Tenant != tenantOf(c) {
		return nil, errorf(CodeBatchNotFound, "Batch %s not found.", id)
	}
	done := int(doneCmd.Val())
	out := &batchResponse{BatchID: id, ModelID: rec.ModelID, Status: rec.Status(done), Format: rec.Format,
		RowsTotal: rec.Rows, RowsFailed: rec.Failed, RowsDone: rec.OK + rec.Failed, RowsWarned: rec.Warned,
		Warnings: rec.Warnings, ChunksTotal: rec.Chunks, ChunksDone: done,
		CreatedAt: stamp(rec.Created), StartedAt: stamp(rec.Started), FinishedAt: stamp(rec.Finished),
		CanceledAt: stamp(rec.Canceled), CallbackURL: rec.CallbackURL,
		ResultsURL: "/api/v1/batches/" + id + "/results", pool: rec.Pool,
		InputURL: rec.InputURL, OutputURL: rec.OutputURL, ExportedAt: stamp(rec.Exported), Error: rec.Error,
		ScheduleID: rec.Schedule}
	if out.CallbackURL != "" {
		out.Webhook = &webhookStatus{DeliveredAt: stamp(rec.WebhookDelivered), Attempts: []jobs.WebhookAttempt{}}
		for _, h := range hooksCmd.Val() {
			var a jobs.WebhookAttempt
			if json.Unmarshal([]byte(h), &a) == nil {
				out.Webhook.Attempts = append(out.Webhook.Attempts, a)
			}
		}
	}
	out.ETASeconds = eta(out)
	return out, nil
}

// stamp is t for JSON: null when unset.
func stamp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// eta extrapolates the rate so far; nil until a rate is known.
func eta(b *batchResponse) *float64 {
	var s float64
	switch b.Status {
	case jobs.BatchQueued, jobs.BatchCanceled:
		return nil
	case jobs.BatchRunning:
		if b.StartedAt == nil || b.RowsDone == 0 {
			return nil
		}
		rate := float64(b.RowsDone) / time.Since(*b.StartedAt).Seconds()
		s = float64(b.RowsTotal-b.RowsDone) / rate
		s = float64(int(s*10)) / 10
	}
	return &s
}

// getBatch answers GET /api/v1/batches/:id.
func (s *Server) getBatch() echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.batch(c)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, b)
	}
}
