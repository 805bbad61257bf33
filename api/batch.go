// Batch submission: the batch limits and POST /api/v1/models/:id/batches,
// with the checks made before the upload is read.

package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/batchchunk"
	"github.com/hokusai-ai/inference-queue/internal/pace"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// BatchConfig configures batch scoring. Zero fields take the defaults
// withDefaults names. Batch data lives for Config.RetentionBatch.
type BatchConfig struct {
	// MaxBytes caps an uploaded batch body. Default 1 GiB.
	MaxBytes int64
	// MaxRows caps the rows of one batch. Default 10,000,000.
	MaxRows int
	// MaxRecordBytes caps one row (one CSV record or JSON line). Default 1 MiB.
	MaxRecordBytes int
	// MinUploadRate, in bytes a second, extends Config.BodyTimeout for an
	// upload by a second per MinUploadRate bytes received: a large file
	// takes as long as it needs while it averages that rate, and one that
	// stalls or trickles still gets its 408. Env
	// HOKUSAI_BATCH_MIN_UPLOAD_RATE, default 64 KiB/s (a 1 GiB upload may
	// take 4.6 hours).
	MinUploadRate int64
	// ChunkRows is how many rows one chunk task scores. Default 4096: big
	// enough that queue overhead is a small share of a chunk's work (about
	// 10 ms of scoring), small enough that a 1M-row batch spreads over all
	// workers and reports progress often.
	ChunkRows int
	// PaceBurst and PacePause pace the API's share of a batch (splitting the
	// upload into chunks, rendering the results): while sync predicts are
	// coming in (one in the last second), each PaceBurst of that work is
	// followed by a PacePause sleep, so a predict's next step finds a core.
	// Zero takes the defaults, 250us and 500us; a negative PaceBurst turns
	// pacing off.
	PaceBurst time.Duration
	PacePause time.Duration
}

func (c BatchConfig) withDefaults() BatchConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.MaxRows == 0 {
		c.MaxRows = 10_000_000
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.ChunkRows == 0 {
		c.ChunkRows = 4096
	}
	if c.MinUploadRate == 0 {
		c.MinUploadRate = 64 << 10
	}
	if c.PaceBurst == 0 {
		c.PaceBurst = 250 * time.Microsecond
	}
	if c.PacePause == 0 {
		c.PacePause = 500 * time.Microsecond
	}
	return c
}

func (c BatchConfig) validate() error {
	if c.ChunkRows < 1 || c.MaxRows < 1 || c.MaxBytes < 1 || c.MaxRecordBytes < 1 || c.MinUploadRate < 1 {
		return errors.New("batch limits, chunk size and minimum upload rate must be positive")
	}
	if c.PacePause < 0 {
		return errors.New("the batch pace pause must not be negative")
	}
	return nil
}

// Media types of batch bodies.
const (
	mediaCSV  = "text/csv"
	mediaJSON = "application/json"
	mediaNDJ  = "application/x-ndjson"
)

var jsonlTypes = map[string]bool{mediaNDJ: true, "application/jsonl": true, "application/x-jsonlines": true,
	"application/jsonlines": true}

// batchAccepted is the 202 answer to a batch submission.
type batchAccepted struct {
	BatchID    string `json:"batch_id"`
	ModelID    string `json:"model_id"`
	Status     string `json:"status"`
	Rows       int    `json:"rows"`
	StatusURL  string `json:"status_url"`
	ResultsURL string `json:"results_url"`
	// Warnings are about the whole file: CSV columns the model does not
	// take, ignored. Each row's own are in its results.
	Warnings []jobs.Warning `json:"warnings"`
}

// submitBatch answers POST /api/v1/models/:id/batches.
func (s *Server) submitBatch() echo.HandlerFunc {
	return func(c echo.Context) error {
		spec, schema, err := s.batchModel(c)
		if err != nil {
			return err
		}
		req := c.Request()
		format, err := batchFormat(req.Header.Get("Content-Type"))
		if err != nil {
			return err
		}
		content, err := s.content(c)
		if err != nil {
			return err
		}
		q := c.QueryParams()
		callback := q.Get("callback_url")
		explain, strict := queryFlag(q.Get("explain")), queryFlag(q.Get("strict"))
		created := time.Now()
		var asOf time.Time
		if raw := q.Get("as_of"); raw != "" {
			if asOf, err = jobs.ParseAsOf(raw); err != nil {
				return &Error{Code: CodeInvalidInput, Detail: "The as_of parameter is not valid.",
					Fields: []jobs.FieldError{{Field: "as_of", Code: jobs.CodeInvalidValue, Detail: err.Error()}}}
			}
		}
		lim := s.cfg.Batch
		if req.ContentLength > lim.MaxBytes {
			return tooLarge(lim)
		}
		if err := s.checkRoom(); err != nil {
			return err
		}
		bodyOf(c).allowRate(lim.MinUploadRate)
		body := &limitedBody{r: content, left: lim.MaxBytes}
		idem := strings.TrimSpace(req.Header.Get("Idempotency-Key"))
		var h hash.Hash // with a key: covers everything that shapes the batch
		if idem != "" {
			h = sha256.New()
			fmt.Fprintf(h, "%s\n%s\n%s\n%t\n%t\n%s\n", spec.ID, format, callback, explain, strict, q.Get("as_of"))
			body.r = io.TeeReader(content, h) // the file, however it was compressed
			if prior, err := s.priorBatch(c, idem); err != nil {
				return err
			} else if prior != nil {
				return s.replayBatch(c, prior, body, h)
			}
		}
		key, _ := c.Get("key").(apikey.Record)
		u, rec := s.newUpload(req.Context(), key, spec, created)
		if explain {
			rec[jobs.BatchFieldExplain] = "1"
		}
		u.setMode(rec, strict, asOf)
		switch format {
		case jobs.BatchCSV:
			rec[jobs.BatchFieldFormat] = jobs.BatchCSV
			err = u.csv(body, schema, rec, callback)
		case mediaJSON:
			err = u.json(body, rec, callback)
		default:
			err = u.jsonl(body, rec, callback)
		}
		switch {
		case err != nil:
		case u.isS3():
			err = u.enqueueS3() // its worker reads the rows
		case u.cw.Rows() == 0:
			err = errorf(CodeInvalidInput, "The body holds no rows to score.")
		default:
			err = u.finish()
		}
		if err == nil && idem != "" {
			err = s.claimIdempotency(c, idem, u, hex.EncodeToString(h.Sum(nil)))
		}
		if u.stopBeat != nil {
			u.stopBeat()
		}
		if err != nil {
			u.abandon()
			if body.over {
				return tooLarge(lim)
			}
			return err
		}
		return acceptBatch(c, u.id, spec.ID, u.cw.Rows(), u.warnings)
	}
}

// queryFlag reads a boolean query parameter: true or 1 set it.
func queryFlag(v string) bool { return v == "true" || v == "1" }

func acceptBatch(c echo.Context, id, modelID string, rows int, warnings []jobs.Warning) error {
	url := "/api/v1/batches/" + id
	c.Response().Header().Set("Location", url)
	if warnings == nil {
		warnings = []jobs.Warning{}
	}
	return c.JSON(http.StatusAccepted, batchAccepted{BatchID: id, ModelID: modelID, Status: jobs.BatchQueued,
		Rows: rows, StatusURL: url, ResultsURL: url + "/results", Warnings: warnings})
}

func tooLarge(lim BatchConfig) *Error {
	return errorf(CodeTooLarge, "The batch is over the %d-byte limit; split the file.", lim.MaxBytes)
}

// batchWindow is how many chunks of one batch of a tenant of weight 1 are
// queued at once: three per ready worker, one more than a 2-core worker
// scores at once so the next is always waiting, while the rest of its task
// slots stay free for sync and async work (a slot taken by a queued chunk
// would make a partner's request wait for it).
//
// The batch queue is served in order, and a batch's next chunk joins its
// tail only when one of its own is done, so batches take turns: each gets
// a share of the workers in proportion to its window. A tenant's weight
// (hokusai keys limits --weight) multiplies its batches' windows, and so
// their share.
func batchWindow(workers int) int { return 3 * max(1, workers) }

// weight is tenant's share of the workers beside other tenants': its own
// (1 to 100), or 1.
func (s *Server) weight(tenant string) int {
	w, err := strconv.Atoi(s.state.get().tenantLimits[tenant].Weight)
	if err != nil || w < 1 {
		return 1
	}
	return min(w, 100)
}

// syncRecent is how long after a sync predict batch work keeps pacing
// itself: partners' calls come in streams, and the next one's arrival is
// what a running burst would delay.
const syncRecent = time.Second

// batchPacer paces one upload or results stream: full speed while no sync
// predict has come in for syncRecent, giving way while they do.
func (s *Server) batchPacer() *pace.Pacer {
	lim := s.cfg.Batch
	return &pace.Pacer{Burst: lim.PaceBurst, Pause: lim.PacePause, Busy: func() bool {
		return time.Now().UnixNano()-s.lastSync.Load() < int64(syncRecent)
	}}
}

// newUpload starts key's batch of spec's model, created then: the upload
// with its chunk writer, and the record's fields every batch has.
func (s *Server) newUpload(ctx context.Context, key apikey.Record, spec registry.Spec, created time.Time) (*batchUpload, map[string]any) {
	lim := s.cfg.Batch
	u := &batchUpload{s: s, ctx: ctx, key: key, id: jobs.NewRequestID(), spec: spec, ttl: s.cfg.RetentionBatch,
		window: batchWindow(s.state.get().readyWorkers(spec.ID, jobs.LaneBatch)) * s.weight(key.Tenant), pace: s.batchPacer(),
		mode: jobs.Mode{AsOf: created}}
	u.cw = &batchchunk.Writer{RDB: s.rdb, Client: s.client, BatchID: u.id, ModelID: spec.ID, Pool: spec.Pool,
		TTL: u.ttl, ChunkRows: lim.ChunkRows, Window: u.window, Charge: u.chargeRows}
	rec := map[string]any{
		jobs.BatchFieldTenant: key.Tenant, jobs.BatchFieldKeyID: key.ID, jobs.BatchFieldModel: spec.ID, jobs.BatchFieldPool: spec.Pool,
		jobs.BatchFieldChunkRows: lim.ChunkRows, jobs.BatchFieldCreated: created.UnixMilli(),
		jobs.BatchFieldFormat: jobs.BatchJSONL, jobs.BatchFieldWindow: u.window,
	}
	return u, rec
}

// batchModel finds the model and its published schema, and refuses early
// when no worker can serve it.
func (s *Server) batchModel(c echo.Context) (registry.Spec, *jobs.Schema, error) {
	snap := s.state.get()
	spec, ok := snap.models[c.Param("id")]
	if !ok {
		return spec, nil, errorf(CodeModelNotFound, "Model %s not found.", c.Param("id"))
	}
	info := snap.info[spec.ID]
	if info == nil || snap.readyWorkers(spec.ID, jobs.LaneBatch) == 0 {
		return spec, nil, noWorker(spec, jobs.LaneBatch)
	}
	return spec, &info.Schema, nil
}

// batchFormat maps the Content-Type to an input format.
func batchFormat(ct string) (string, error) {
	mt, params, err := mime.ParseMediaType(ct)
	format := ""
	switch {
	case err != nil:
	case mt == mediaCSV:
		format = jobs.BatchCSV
	case mt == mediaJSON:
		format = mediaJSON
	case jsonlTypes[mt]:
		format = jobs.BatchJSONL
	}
	if format != "" {
		return format, checkCharset(params)
	}
	return "", errorf(CodeUnsupportedMedia, "Send the batch as text/csv (with a header row), application/x-ndjson "+
		`(one JSON object a line) or application/json ({"inputs": [...]}), not %q.`, ct)
}
