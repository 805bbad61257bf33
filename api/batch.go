package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/pace"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/wakeup"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// BatchConfig configures batch scoring. Zero fields take the defaults
// withDefaults names. Batch data lives for Config.ResultTTL.
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

// batchUpload is one submission being stored: records are gathered into
// chunks, each chunk stored and its task queued as soon as it is full.
type batchUpload struct {
	s       *Server
	ctx     context.Context
	id      string
	spec    registry.Spec
	ttl     time.Duration
	chunk   bytes.Buffer
	inChunk int
	rows    int
	chunks  int
	window  int // chunks of this batch queued at once
	pace    *pace.Pacer
	mode    jobs.Mode
	// warnings are the file's own (see batchAccepted).
	warnings []jobs.Warning
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
		u := &batchUpload{s: s, ctx: req.Context(), id: jobs.NewRequestID(), spec: spec, ttl: s.cfg.ResultTTL,
			window: batchWindow(s.state.get().readyWorkers(spec.ID, jobs.LaneBatch)), pace: s.batchPacer(),
			mode: jobs.Mode{Strict: strict, AsOf: created}}
		rec := map[string]any{
			jobs.BatchFieldTenant: tenantOf(c), jobs.BatchFieldModel: spec.ID, jobs.BatchFieldPool: spec.Pool,
			jobs.BatchFieldChunkRows: lim.ChunkRows, jobs.BatchFieldCreated: created.UnixMilli(),
			jobs.BatchFieldFormat: jobs.BatchJSONL, jobs.BatchFieldWindow: u.window,
		}
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
		if err == nil && u.rows == 0 {
			err = errorf(CodeInvalidInput, "The body holds no rows to score.")
		}
		if err == nil {
			err = u.finish()
		}
		if err == nil && idem != "" {
			err = s.claimIdempotency(c, idem, u, hex.EncodeToString(h.Sum(nil)))
		}
		if err != nil {
			u.abandon()
			if body.over {
				return tooLarge(lim)
			}
			return err
		}
		return acceptBatch(c, u.id, spec.ID, u.rows, u.warnings)
	}
}

// queryFlag reads a boolean query parameter: true or 1 set it.
func queryFlag(v string) bool { return v == "true" || v == "1" }

// setMode records how the batch's rows are to be read: strictly or not,
// and as of when (by default, its submission).
func (u *batchUpload) setMode(rec map[string]any, strict bool, asOf time.Time) {
	if strict {
		rec[jobs.BatchFieldStrict] = "1"
		u.mode.Strict = true
	}
	if !asOf.IsZero() {
		rec[jobs.BatchFieldAsOf] = asOf.UnixMilli()
		u.mode.AsOf = asOf
	}
}

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

// batchWindow is how many chunks of one batch are queued at once: three per
// ready worker, one more than a 2-core worker scores at once so the next is
// always waiting, while the rest of its task slots stay free for sync and
// async work (a slot taken by a queued chunk would make a partner's request
// wait for it).
func batchWindow(workers int) int { return 3 * max(1, workers) }

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

// limitedBody reads at most left bytes and remembers whether the body had more.
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		switch {
		case n > 0:
			l.over = true
			return 0, errors.New("body over the limit")
		case err != nil && err != io.EOF:
			return 0, err // a stall or a client gone is not the end of the body
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func checkCallback(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errorf(CodeInvalidInput, "callback_url %q must be an absolute http or https URL.", raw)
	}
	return nil
}

// start writes the batch record; chunks follow.
func (u *batchUpload) start(rec map[string]any, callback string) error {
	if err := checkCallback(callback); err != nil {
		return err
	}
	if callback != "" {
		rec[jobs.BatchFieldCallback] = callback
	}
	_, err := u.s.rdb.TxPipelined(u.ctx, func(p redis.Pipeliner) error {
		p.HSet(u.ctx, jobs.BatchKey(u.id), rec)
		p.PExpire(u.ctx, jobs.BatchKey(u.id), u.ttl)
		return nil
	})
	return u.redisErr(err)
}

func (u *batchUpload) redisErr(err error) error {
	if err == nil {
		return nil
	}
	if u.ctx.Err() != nil {
		return errorf(CodeBadRequest, "The upload was interrupted.")
	}
	u.s.log.Warn("redis unavailable", "batch_id", u.id, "err", err.Error())
	return &Error{Code: CodeQueueUnavailable, Detail: "The job queue is unreachable right now; retry shortly.", RetryAfter: retryAfterUnavailable}
}

func (u *batchUpload) readErr(err error, r *batchfile.Reader) error {
	if errors.Is(err, batchfile.ErrRecordTooLong) {
		return errorf(CodeTooLarge, "Line %d: a row is over the %d-byte limit (an unclosed quote, perhaps).", r.Line(), u.s.cfg.Batch.MaxRecordBytes)
	}
	return errorf(CodeBadRequest, "The body could not be read.")
}

// csv stores a CSV body: a header naming the model's inputs (and an
// optional id column), then one row a record.
func (u *batchUpload) csv(body io.Reader, schema *jobs.Schema, rec map[string]any, callback string) error {
	r := batchfile.NewCSVReader(body, u.s.cfg.Batch.MaxRecordBytes)
	head, err := r.Next()
	if err == io.EOF {
		return errorf(CodeInvalidInput, "The CSV is empty; it needs a header row naming the model's inputs.")
	}
	if err != nil {
		return u.readErr(err, r)
	}
	header, err := batchfile.SplitCSV(string(head), nil)
	var d *batchfile.Decoder
	if err == nil {
		d, err = batchfile.NewCSVDecoder(schema, header, u.mode)
	}
	if err != nil {
		return errorf(CodeInvalidInput, "The CSV header is not usable: %s.", err)
	}
	hj, _ := json.Marshal(header)
	rec[jobs.BatchFieldHeader] = string(hj)
	if d.Ignored != nil {
		u.warnings = []jobs.Warning{{Code: jobs.CodeUnknownField,
			Detail: "The model does not take the columns " + strings.Join(d.Ignored, ", ") + "; they are ignored."}}
		wj, _ := json.Marshal(u.warnings)
		rec[jobs.BatchFieldWarnings] = string(wj)
	}
	if err := u.start(rec, callback); err != nil {
		return err
	}
	return u.records(r)
}

// jsonl stores a JSONL body, one object a line.
func (u *batchUpload) jsonl(body io.Reader, rec map[string]any, callback string) error {
	if err := u.start(rec, callback); err != nil {
		return err
	}
	return u.records(batchfile.NewJSONLReader(body, u.s.cfg.Batch.MaxRecordBytes))
}

func (u *batchUpload) records(r *batchfile.Reader) error {
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return u.readErr(err, r)
		}
		if err := u.add(rec); err != nil {
			return err
		}
	}
}

// json stores a {"inputs": [...], "callback_url": "..."} body, each input
// as one JSONL line, reading the list as it streams.
func (u *batchUpload) json(body io.Reader, rec map[string]any, callback string) error {
	dec := json.NewDecoder(bufio.NewReaderSize(body, 256<<10))
	bad := func(err error) error {
		return errorf(CodeBadRequest, `The body must be {"inputs": [...]}: %s.`, jsonProblem(err))
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad(fmt.Errorf("it does not start with an object"))
	}
	started := false
	var line bytes.Buffer
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		switch t {
		case "callback_url":
			if started {
				return errorf(CodeInvalidInput, `Put "callback_url" before "inputs", or in the query string.`)
			}
			if err := dec.Decode(&callback); err != nil {
				return bad(err)
			}
		case "options":
			if started {
				return errorf(CodeInvalidInput, `Put "options" before "inputs", or in the query string.`)
			}
			if err := u.options(dec, rec); err != nil {
				return err
			}
		case "inputs":
			if err := u.start(rec, callback); err != nil {
				return err
			}
			started = true
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return errorf(CodeInvalidInput, `"inputs" must be a list of objects.`)
			}
			for dec.More() {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return bad(err)
				}
				if !utf8.Valid(raw) {
					return utf8Error(raw, fmt.Sprintf("Input %d", u.rows))
				}
				line.Reset()
				if err := json.Compact(&line, raw); err != nil {
					return bad(err)
				}
				if err := u.add(line.Bytes()); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return bad(err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return bad(err)
			}
		}
	}
	if !started {
		return errorf(CodeInvalidInput, `The body needs "inputs": a list of objects.`)
	}
	return nil
}

// options reads a JSON batch body's "options" (explain, strict, as_of).
func (u *batchUpload) options(dec *json.Decoder, rec map[string]any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return errorf(CodeBadRequest, `The body must be {"inputs": [...]}: %s.`, jsonProblem(err))
	}
	if !utf8.Valid(raw) {
		return utf8Error(raw, `"options"`)
	}
	o, err := jobs.ParseOptions(raw)
	if err != nil {
		return &Error{Code: CodeInvalidInput, Detail: "The options are not valid.",
			Fields: []jobs.FieldError{{Field: "options", Code: jobs.CodeInvalidValue, Detail: err.Error()}}}
	}
	if o.Explain != nil {
		delete(rec, jobs.BatchFieldExplain)
		if *o.Explain {
			rec[jobs.BatchFieldExplain] = "1"
		}
	}
	var asOf time.Time
	if o.AsOf != "" {
		asOf = o.Mode(time.Time{}).AsOf
	}
	u.setMode(rec, o.Strict, asOf)
	return nil
}

// add appends one record to the current chunk. A full chunk is stored
// only when the next record arrives, so the last chunk is stored after the
// totals are known and the batch cannot look complete before then.
func (u *batchUpload) add(rec []byte) error {
	if u.rows >= u.s.cfg.Batch.MaxRows {
		return errorf(CodeTooLarge, "The batch is over the %d-row limit; split the file.", u.s.cfg.Batch.MaxRows)
	}
	if u.inChunk == u.s.cfg.Batch.ChunkRows {
		if err := u.store(); err != nil {
			return err
		}
	}
	u.chunk.Write(rec)
	u.chunk.WriteByte('\n')
	u.rows++
	u.inChunk++
	u.pace.Step()
	return nil
}

// store writes the current chunk, queueing its task when the window allows:
// chunk n runs once chunk n-window is done. The worker finishing that chunk
// adds it to the done set, then queues n if n's input exists (queueNext); here
// the input is written, then the done set read, in one pipeline. Each side
// writes before it reads, so at least one of them sees the other's write and
// queues n (both may; the task id makes it once). A plain SET takes the blob
// as Redis parsed it, where a script would copy it twice and hold Redis
// meanwhile.
func (u *batchUpload) store() error {
	n := u.chunks
	prev := n - u.window
	var done *redis.BoolCmd
	_, err := u.s.rdb.Pipelined(u.ctx, func(p redis.Pipeliner) error {
		p.Set(u.ctx, jobs.BatchInKey(u.id, n), u.chunk.Bytes(), u.ttl)
		if prev >= 0 {
			done = p.SIsMember(u.ctx, jobs.BatchDoneKey(u.id), prev)
		}
		return nil
	})
	if err != nil {
		return u.redisErr(err)
	}
	u.chunk.Reset()
	u.inChunk = 0
	u.chunks++
	if done == nil || done.Val() {
		return u.enqueue(n)
	}
	return nil
}

func (u *batchUpload) enqueue(n int) error {
	task, err := jobs.NewBatchChunkTask(jobs.BatchChunkPayload{BatchID: u.id, Chunk: n, ModelID: u.spec.ID}, u.spec.Pool, jobs.BatchChunkRetries)
	if err != nil {
		return err
	}
	if _, err := u.s.client.EnqueueContext(u.ctx, task); errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // the worker finishing chunk n-window queued it first
	} else if err != nil {
		return u.redisErr(err)
	}
	_, _ = u.s.rdb.Pipelined(u.ctx, func(p redis.Pipeliner) error {
		wakeup.Push(u.ctx, p, u.spec.Pool, jobs.LaneBatch)
		return nil
	})
	return nil
}

// finish records the totals, then stores the last chunk.
func (u *batchUpload) finish() error {
	err := u.s.rdb.HSet(u.ctx, jobs.BatchKey(u.id), jobs.BatchFieldRows, u.rows, jobs.BatchFieldChunks, u.chunks+1).Err()
	if err != nil {
		return u.redisErr(err)
	}
	return u.store()
}

// abandon removes a batch whose upload failed; its queued chunks find the
// record gone and do nothing.
func (u *batchUpload) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys := []string{jobs.BatchKey(u.id), jobs.BatchDoneKey(u.id)}
	for n := range u.chunks {
		keys = append(keys, jobs.BatchInKey(u.id, n), jobs.BatchOutKey(u.id, n))
	}
	if err := u.s.rdb.Unlink(ctx, keys...).Err(); err != nil {
		u.s.log.Warn("abandoned batch not removed", "batch_id", u.id, "err", err.Error())
	}
}

// idemRecord is what an Idempotency-Key maps to.
type idemRecord struct {
	BatchID string `json:"batch_id"`
	Hash    string `json:"hash"`
}

func (s *Server) priorBatch(c echo.Context, key string) (*idemRecord, error) {
	b, err := s.rdb.Get(c.Request().Context(), jobs.BatchIdemKey(tenantOf(c), key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.unavailable(c, err)
	}
	var r idemRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil
	}
	return &r, nil
}

// replayBatch answers a resubmission: the same batch when the body is the
// same, 409 when the key was used for another body.
func (s *Server) replayBatch(c echo.Context, prior *idemRecord, body *limitedBody, h hash.Hash) error {
	if _, err := io.Copy(io.Discard, body); err != nil {
		if body.over {
			return tooLarge(s.cfg.Batch)
		}
		return errorf(CodeBadRequest, "The body could not be read.")
	}
	if hex.EncodeToString(h.Sum(nil)) != prior.Hash {
		return errorf(CodeConflict, "This Idempotency-Key was used for a different batch (%s); use a new key for a new file.", prior.BatchID)
	}
	rec, err := s.rdb.HMGet(c.Request().Context(), jobs.BatchKey(prior.BatchID), jobs.BatchFieldModel, jobs.BatchFieldRows,
		jobs.BatchFieldWarnings).Result()
	if err != nil {
		return s.unavailable(c, err)
	}
	model, _ := rec[0].(string)
	rows, _ := rec[1].(string)
	n, _ := strconv.Atoi(rows)
	return acceptBatch(c, prior.BatchID, model, n, fileWarnings(rec[2]))
}

// claimIdempotency binds key to the new batch; when a concurrent request
// with the same key won, it answers with that batch instead (or 409).
func (s *Server) claimIdempotency(c echo.Context, key string, u *batchUpload, sum string) error {
	ctx := c.Request().Context()
	b, _ := json.Marshal(idemRecord{BatchID: u.id, Hash: sum})
	ok, err := s.rdb.SetNX(ctx, jobs.BatchIdemKey(tenantOf(c), key), b, s.cfg.ResultTTL).Result()
	if err != nil {
		return s.unavailable(c, err)
	}
	if ok {
		return nil
	}
	prior, err := s.priorBatch(c, key)
	if err != nil || prior == nil {
		return errorf(CodeConflict, "A batch with this Idempotency-Key is being submitted; retry in a moment.")
	}
	if prior.Hash != sum {
		return errorf(CodeConflict, "This Idempotency-Key was used for a different batch (%s); use a new key for a new file.", prior.BatchID)
	}
	u.abandon()
	u.id = prior.BatchID
	return nil
}

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
	rec := recCmd.Val()
	if len(rec) == 0 || rec[jobs.BatchFieldTenant] != tenantOf(c) {
		return nil, errorf(CodeBatchNotFound, "Batch %s not found.", id)
	}
	num := func(f string) int { n, _ := strconv.Atoi(rec[f]); return n }
	done := int(doneCmd.Val())
	out := &batchResponse{BatchID: id, ModelID: rec[jobs.BatchFieldModel], Status: jobs.BatchStatus(rec, done),
		Format: rec[jobs.BatchFieldFormat], RowsTotal: num(jobs.BatchFieldRows), RowsFailed: num(jobs.BatchFieldFailed),
		RowsDone: num(jobs.BatchFieldOK) + num(jobs.BatchFieldFailed), RowsWarned: num(jobs.BatchFieldWarned),
		Warnings: fileWarnings(rec[jobs.BatchFieldWarnings]), ChunksTotal: num(jobs.BatchFieldChunks), ChunksDone: done,
		CreatedAt: stamp(rec[jobs.BatchFieldCreated]), StartedAt: stamp(rec[jobs.BatchFieldStarted]),
		FinishedAt: stamp(rec[jobs.BatchFieldFinished]), CanceledAt: stamp(rec[jobs.BatchFieldCanceled]),
		CallbackURL: rec[jobs.BatchFieldCallback], ResultsURL: "/api/v1/batches/" + id + "/results",
		pool: rec[jobs.BatchFieldPool]}
	if out.CallbackURL != "" {
		out.Webhook = &webhookStatus{DeliveredAt: stamp(rec[jobs.BatchFieldHookDone]), Attempts: []jobs.WebhookAttempt{}}
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

// fileWarnings decodes a batch record's warnings (a JSON list, a string
// from Redis), never nil.
func fileWarnings(v any) []jobs.Warning {
	w := []jobs.Warning{}
	if s, ok := v.(string); ok && s != "" {
		_ = json.Unmarshal([]byte(s), &w)
	}
	return w
}

func stamp(ms string) *time.Time {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n == 0 {
		return nil
	}
	t := time.UnixMilli(n).UTC()
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

// resultsWindow is how many chunk results are fetched per round trip while
// streaming results.
const resultsWindow = 8

// resultsPoll is how often a waiting results stream checks for its next chunk.
const resultsPoll = 20 * time.Millisecond

// The trailers of a results stream that ended cleanly: how many rows it
// holds and the batch's status. A stream that fails has none: it is broken
// off (abortResults), so a download cut short never looks complete.
const (
	trailerRows   = "X-Hokusai-Rows"
	trailerStatus = "X-Hokusai-Status"
)

// codeResultsAborted marks a results stream broken off after its header in
// the access log and in hokusai_http_rejected_total: it has no JSON answer
// to carry a code.
const codeResultsAborted = "results_aborted"

// errRedis marks a results stream that could not reach Redis: before the
// header goes out it answers 503, which a retry may get past.
var errRedis = errors.New("redis unreachable")

// errCanceled is what a wait=true stream finds at the first chunk its
// batch's cancel dropped: a clean end, marked as canceled, not a failure.
var errCanceled = errors.New("batch canceled")

// getBatchResults answers GET /api/v1/batches/:id/results?format=csv|jsonl,
// streaming the chunks' results in input order. With wait=true it starts
// while the batch runs and writes each chunk as soon as it and those before
// it are done, so the download overlaps the scoring.
//
// The header goes out with the first 256 KiB of rows, or sooner when a
// wait=true stream sends its rows so far to wait for the next chunk; a
// failure before then still answers with a JSON error. After it, the stream
// either ends with its trailers (and, in JSONL, the end marker) or is broken
// off.
func (s *Server) getBatchResults() echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.batch(c)
		if err != nil {
			return err
		}
		wait := c.QueryParam("wait") == "true"
		switch b.Status {
		case jobs.BatchSucceeded, jobs.BatchPartiallyFailed, jobs.BatchFailed:
		case jobs.BatchQueued, jobs.BatchRunning:
			if wait {
				break
			}
			fallthrough
		default:
			return &Error{Code: CodeConflict, Detail: fmt.Sprintf("Batch %s is %s; results are ready once it finishes (or stream them with wait=true).", b.BatchID, b.Status),
				Extra: map[string]any{"status": b.Status}}
		}
		format := c.QueryParam("format")
		if format == "" {
			format = b.Format
		}
		var r batchfile.Renderer
		res := c.Response()
		switch format {
		case "csv":
			r = &batchfile.CSVRenderer{}
			res.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		case "jsonl":
			r = &batchfile.JSONLRenderer{}
			res.Header().Set(echo.HeaderContentType, mediaNDJ)
		default:
			return errorf(CodeBadRequest, "format must be csv or jsonl, not %q.", format)
		}
		// Declared only on a 200: an error answer has a length and no trailers.
		res.Before(func() {
			if res.Status == http.StatusOK {
				res.Header().Set("Trailer", trailerRows+", "+trailerStatus)
			}
		})
		st := &resultsStream{s: s, ctx: c.Request().Context(), b: b, wait: wait, rows: &batchfile.Tally{Renderer: r},
			res: res, w: bufio.NewWriterSize(res, 256<<10), pace: s.batchPacer()}
		status, err := st.run()
		if err == nil {
			err = st.end(status)
		}
		if err != nil {
			return s.resultsFailed(c, st, err)
		}
		res.Header().Set(trailerRows, strconv.Itoa(st.rows.Rows))
		res.Header().Set(trailerStatus, status)
		return nil
	}
}

// resultsStream is one batch's results being written.
type resultsStream struct {
	s    *Server
	ctx  context.Context
	b    *batchResponse
	wait bool
	rows *batchfile.Tally // the rows written so far
	res  *echo.Response
	w    *bufio.Writer
	pace *pace.Pacer
}

// run writes the rows, chunk after chunk, and returns the batch's status
// once all are written: succeeded, partially_failed or failed by the rows'
// own failures, the counts the batch status is derived from. A wait=true
// stream that meets a chunk its batch's cancel dropped stops there, canceled.
func (st *resultsStream) run() (string, error) {
	id, total := st.b.BatchID, st.b.ChunksTotal
	keys := make([]string, 0, resultsWindow)
	for n := 0; n < total; {
		keys = keys[:0]
		for k := n; k < min(n+resultsWindow, total); k++ {
			keys = append(keys, jobs.BatchOutKey(id, k))
		}
		blobs, err := st.s.rdb.MGet(st.ctx, keys...).Result()
		if err != nil {
			return "", fmt.Errorf("%w: read the results of chunks %d-%d: %w", errRedis, n, n+len(keys)-1, err)
		}
		missing := false
		for _, v := range blobs {
			blob, ok := v.(string)
			if missing = !ok; missing {
				break
			}
			if err := batchfile.RenderChunk(st.w, st.rows, []byte(blob), n == 0, st.pace); err != nil {
				return "", fmt.Errorf("render chunk %d: %w", n, err)
			}
			n++
		}
		if !missing {
			continue
		}
		if !st.wait {
			return "", fmt.Errorf("the results of chunk %d are gone", n)
		}
		if err := st.send(); err != nil {
			return "", err
		}
		if err := st.s.awaitChunk(st.ctx, id, n); errors.Is(err, errCanceled) {
			return jobs.BatchCanceled, nil
		} else if err != nil {
			return "", err
		}
	}
	switch st.rows.Failed {
	case 0:
		return jobs.BatchSucceeded, nil
	case st.rows.Rows:
		return jobs.BatchFailed, nil
	}
	return jobs.BatchPartiallyFailed, nil
}

// end checks that the stream holds every row of its batch (but those a
// cancel dropped), then writes the end marker and sends what is buffered.
func (st *resultsStream) end(status string) error {
	if status != jobs.BatchCanceled && st.rows.Rows != st.b.RowsTotal {
		return fmt.Errorf("the chunks hold %d rows of the batch's %d", st.rows.Rows, st.b.RowsTotal)
	}
	if err := st.rows.End(st.w, st.rows.Rows, status); err != nil {
		return fmt.Errorf("send the end: %w", err)
	}
	if !st.res.Committed {
		// A CSV canceled before its first row has no byte to carry the
		// header (and its Trailer declaration) out.
		st.res.WriteHeader(http.StatusOK)
	}
	return st.send()
}

// send pushes the rows written so far through every buffer to the client:
// a wait=true stream does before it waits for the next chunk, so what is
// scored is there to read meanwhile. With no row yet there is nothing to
// push: flushing would send the header past Echo, without its Trailer
// declaration, and end the chance of a JSON error.
func (st *resultsStream) send() error {
	if err := st.w.Flush(); err != nil {
		return fmt.Errorf("send rows: %w", err)
	}
	if !st.res.Committed {
		return nil
	}
	if err := http.NewResponseController(st.res).Flush(); err != nil {
		return fmt.Errorf("send rows: %w", err)
	}
	return nil
}

// resultsFailed ends a results stream that failed with cause, logging it
// once. Before the header went out the client gets a JSON error; after, the
// response is broken off (abortResults). A client that left is logged at
// info level and not answered: there is nothing to fix on our side.
func (s *Server) resultsFailed(c echo.Context, st *resultsStream, cause error) error {
	res := c.Response()
	gone := st.ctx.Err() != nil
	if !res.Committed && !gone && errors.Is(cause, errRedis) {
		return s.unavailable(c, cause)
	}
	level := slog.LevelWarn
	if gone {
		level = slog.LevelInfo
	}
	s.log.Log(st.ctx, level, "batch results cut short", "request_id", requestID(c), "batch_id", st.b.BatchID,
		"rows_written", st.rows.Rows, "header_sent", res.Committed, "err", cause.Error())
	switch {
	case res.Committed:
		s.rejected(c, codeResultsAborted)
		abortResults(res)
	case !gone:
		return errorf(CodeInternal, "The batch's results could not be read; the request id identifies the failure in our logs.")
	}
	return nil
}

// abortResults breaks off a response whose header is out, so the client
// sees a failed transfer, not a short file that ends cleanly: over HTTP/1.1
// the connection is closed before the last, empty chunk (curl exits 18, Go's
// client reads io.ErrUnexpectedEOF, Python's requests raises
// ChunkedEncodingError). Taking the connection, rather than panicking, lets
// the access log and the metrics see the request. Where the connection
// cannot be taken (HTTP/2, when the handler is embedded behind TLS), the
// panic makes net/http reset the stream instead.
func abortResults(res *echo.Response) {
	conn, _, err := http.NewResponseController(res).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// awaitChunk waits until chunk n's results are stored. It returns
// errCanceled when the batch was canceled, and an error when the batch is
// gone, Redis cannot be reached or the caller left.
func (s *Server) awaitChunk(ctx context.Context, id string, n int) error {
	for {
		pl := s.rdb.Pipeline()
		out := pl.Exists(ctx, jobs.BatchOutKey(id, n))
		canceled := pl.HExists(ctx, jobs.BatchKey(id), jobs.BatchFieldCanceled)
		live := pl.Exists(ctx, jobs.BatchKey(id))
		if _, err := pl.Exec(ctx); err != nil {
			return fmt.Errorf("%w: wait for chunk %d: %w", errRedis, n, err)
		}
		switch {
		case out.Val() == 1:
			return nil
		case canceled.Val():
			return errCanceled
		case live.Val() == 0:
			return fmt.Errorf("the batch expired before chunk %d was scored", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for chunk %d: %w", n, ctx.Err())
		case <-time.After(resultsPoll):
		}
	}
}

// cancelBatch answers DELETE /api/v1/batches/:id: chunks not yet done are
// dropped; finished batches answer 409.
func (s *Server) cancelBatch() echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.batch(c)
		if err != nil {
			return err
		}
		switch b.Status {
		case jobs.BatchCanceled:
			// Again, in case the first cancel could not queue the webhook.
			if err := s.notifyCanceled(c.Request().Context(), b); err != nil {
				return s.unavailable(c, err)
			}
			return c.JSON(http.StatusOK, b)
		case jobs.BatchSucceeded, jobs.BatchPartiallyFailed, jobs.BatchFailed:
			return errorf(CodeConflict, "Batch %s already %s; there is nothing to cancel.", b.BatchID, b.Status)
		}
		ctx := c.Request().Context()
		now := time.Now().UnixMilli()
		keys := make([]string, 0, b.ChunksTotal)
		for n := range b.ChunksTotal {
			keys = append(keys, jobs.BatchInKey(b.BatchID, n))
		}
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, jobs.BatchKey(b.BatchID), jobs.BatchFieldCanceled, now)
			if len(keys) > 0 {
				p.Unlink(ctx, keys...)
			}
			return nil
		})
		if err != nil {
			return s.unavailable(c, err)
		}
		if err := s.notifyCanceled(ctx, b); err != nil {
			return s.unavailable(c, err)
		}
		b.Status, b.CanceledAt, b.ETASeconds = jobs.BatchCanceled, stamp(strconv.FormatInt(now, 10)), nil
		return c.JSON(http.StatusOK, b)
	}
}

// notifyCanceled queues the webhook of canceled batch b, if it has a
// callback, once whatever the number of calls: a worker posts it, since
// the API makes no outbound calls.
func (s *Server) notifyCanceled(ctx context.Context, b *batchResponse) error {
	if b.CallbackURL == "" {
		return nil
	}
	task, err := jobs.NewBatchNotifyTask(b.BatchID, b.pool)
	if err != nil {
		return err
	}
	if _, err := s.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}
