// S3 batches: one task streams the input object into chunks (the chunk
// tasks score them as they score an upload's) and writes their results to
// the output prefix in input order as they finish (s3export.go). It
// checkpoints in the batch record, so a run that dies resumes from the
// chunks stored and the parts uploaded.

package worker

import (
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/internal/batchchunk"
	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/ratelimit"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/objstore"
)

// s3RangeBytes is how much of the input one GET asks for.
const s3RangeBytes = 8 << 20

// s3Poll is how often a run with nothing to read or write looks for
// newly scored chunks, and how often it checks for a cancel.
const s3Poll = 20 * time.Millisecond

// batchFailure fails an S3 batch as a whole: no retry can mend it.
type batchFailure struct{ jobs.BatchError }

func (f *batchFailure) Error() string { return f.Code + ": " + f.Detail }

func failBatch(code, format string, args ...any) error {
	return &batchFailure{jobs.BatchError{Code: code, Detail: fmt.Sprintf(format, args...)}}
}

// handleBatchS3 runs an S3 batch from its last checkpoint to its end.
func (w *Worker) handleBatchS3(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeBatchS3(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	rec, ok, err := w.batchRecord(ctx, p.BatchID)
	if err != nil || !ok || !rec.Exported.IsZero() || rec.Error != nil {
		return err // expired, written, or failed already
	}
	r := &s3Run{w: w, id: p.BatchID, rec: rec, log: w.log.With("batch_id", p.BatchID, "model_id", rec.ModelID)}
	err = r.run(ctx)
	var fail *batchFailure
	switch {
	case err == nil, ctx.Err() != nil:
		return err
	case errors.As(err, &fail):
	case objstore.IsFinal(err):
		fail = &batchFailure{jobs.BatchError{Code: jobs.BatchErrInput, Detail: err.Error()}}
		if r.reading {
			break
		}
		fail.Code = jobs.BatchErrOutput
	case lastAttempt(ctx):
		fail = &batchFailure{jobs.BatchError{Code: jobs.BatchErrOutput, Detail: err.Error()}}
	default:
		r.log.Warn("S3 batch run failed; it will resume", "err", err.Error())
		return err
	}
	return w.failS3Batch(ctx, r, fail)
}

// s3Run is one run of an S3 batch's task.
type s3Run struct {
	w       *Worker
	id      string
	rec     jobs.BatchRecord
	log     *slog.Logger
	in, out s3url.URL
	cw      *batchchunk.Writer
	// reading is set while the input is the thing being read, so an S3
	// failure is put down to the input or to the output.
	reading bool
	exp     *exporter
}

func (r *s3Run) run(ctx context.Context) error {
	if err := r.check(ctx); err != nil {
		return err
	}
	r.cw = &batchchunk.Writer{RDB: r.w.rdb, Client: r.w.enqueuer, BatchID: r.id, ModelID: r.rec.ModelID,
		Pool: r.rec.Pool, TTL: r.w.rdb.PTTL(ctx, jobs.BatchKey(r.id)).Val(), ChunkRows: r.rec.ChunkRows,
		Window: r.rec.Window, Progress: jobs.BatchFieldS3Stored}
	if r.cw.TTL <= 0 || r.cw.ChunkRows < 1 || r.cw.Window < 1 {
		return failBatch(jobs.BatchErrInput, "The batch record is incomplete.")
	}
	if r.rec.RowLimitKey != "" {
		key, kerr := ratelimit.ParseLimit(r.rec.RowLimitKey)
		tenant, terr := ratelimit.ParseLimit(r.rec.RowLimitTenant)
		if kerr != nil || terr != nil {
			return failBatch(jobs.BatchErrInput, "The batch record's row limits are not valid.")
		}
		r.cw.Charge = r.chargeRows(ratelimit.Buckets(ratelimit.BatchRows, r.rec.Tenant, r.rec.KeyID, key, tenant))
	}
	exp, err := newExporter(ctx, r)
	if err != nil {
		return err
	}
	r.exp = exp
	var in *s3Input
	total := r.rec.Chunks
	if !r.rec.Stored || r.rec.S3Stored < r.rec.Chunks {
		r.reading = true
		if in, err = r.open(ctx); err != nil {
			return err
		}
		defer in.close()
		total = -1
	}
	ahead := 2*r.rec.Window + 2 // chunks stored but not yet written out
	lastCheck := time.Now()
	for {
		progressed := false
		for in != nil && r.cw.Chunks()-exp.state.Next < ahead {
			before := r.cw.Chunks()
			done, err := r.ingest(ctx, in)
			if err != nil {
				return err
			}
			progressed = progressed || r.cw.Chunks() > before
			if done {
				in.close()
				in, total, r.reading = nil, r.cw.Chunks(), false
			}
		}
		stored := r.cw.Chunks()
		if in == nil {
			stored = total
		}
		n, err := exp.step(ctx, stored)
		if err != nil {
			return err
		}
		if total >= 0 && exp.state.Next == total {
			return exp.finish(ctx)
		}
		if time.Since(lastCheck) > 250*time.Millisecond {
			lastCheck = time.Now()
			if gone, err := r.canceled(ctx); err != nil || gone {
				return err
			}
		}
		if n == 0 && !progressed {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s3Poll):
			}
		}
	}
}

// chargeRows counts each chunk's rows, as it is stored, against buckets:
// the batch row limits of the batch's key and tenant, as the API charges
// an upload's. Past them the batch fails; the rows scored before stay
// scored and charged, the rest are not scored.
func (r *s3Run) chargeRows(buckets []ratelimit.Bucket) func(ctx context.Context, rows int) error {
	return func(ctx context.Context, rows int) error {
		d, err := r.w.rows.Take(ctx, buckets, int64(rows), time.Now())
		if err != nil || d.Allowed {
			return err // Redis failing: the run is retried
		}
		return failBatch(jobs.BatchErrRateLimited, "Batch row limit exceeded: the %s's limit is %s batch rows, and the input passed it after row %d; "+
			"the rest of the input is not scored.", strings.TrimPrefix(d.Binding.Policy, ratelimit.BatchRows+"-"), d.Binding.Limit, r.cw.Rows()-rows)
	}
}

// check applies the allow-list again: the API's check may be older than
// this worker's list.
func (r *s3Run) check(ctx context.Context) error {
	if r.w.cfg.S3 == nil {
		return failBatch(jobs.BatchErrUnavailable, "This worker has no S3 client configured.")
	}
	in, err := s3url.Parse(r.rec.InputURL)
	if err != nil {
		return failBatch(jobs.BatchErrInput, "input_url: %s.", err)
	}
	out, err := s3url.ParsePrefix(r.rec.OutputURL)
	if err != nil {
		return failBatch(jobs.BatchErrOutput, "output_url: %s.", err)
	}
	for _, u := range []s3url.URL{in, out} {
		ok, err := r.w.cfg.S3Allow.Check(ctx, r.w.rdb, r.rec.Tenant, u)
		if err != nil {
			return err
		}
		if !ok {
			return failBatch(jobs.BatchErrForbidden, "%s is not on the S3 allow-list.", u)
		}
	}
	r.in, r.out = in, out
	return nil
}

// canceled reports whether the batch was canceled; the run then aborts its
// uploads and ends.
func (r *s3Run) canceled(ctx context.Context) (bool, error) {
	rec, ok, err := r.w.batchRecord(ctx, r.id)
	if err != nil {
		return false, err
	}
	if ok && rec.Canceled.IsZero() && rec.Error == nil {
		return false, nil
	}
	r.log.Info("S3 batch stopped", "outcome", "canceled or expired")
	r.exp.abort(ctx)
	return true, nil
}

// s3Input is the input object being read record by record.
type s3Input struct {
	body    io.ReadCloser
	records *batchfile.Reader
	sum     hash.Hash // of the object's bytes as stored
	gz      *gzip.Reader
}

func (in *s3Input) close() {
	_ = in.body.Close()
	if in.gz != nil {
		_ = in.gz.Close()
	}
}

// open starts reading the input from its first byte, checks (or, on the
// first run, records) a CSV's header, and skips the records of the chunks
// an earlier run stored.
func (r *s3Run) open(ctx context.Context) (*s3Input, error) {
	obj, err := r.w.cfg.S3.Stat(ctx, r.in)
	if err != nil {
		return nil, err
	}
	if obj.Size > r.rec.MaxBytes {
		return nil, failBatch(jobs.BatchErrTooLarge, "The input is %d bytes, over the %d-byte limit; split the file.", obj.Size, r.rec.MaxBytes)
	}
	in := &s3Input{body: r.w.cfg.S3.Reader(ctx, r.in, obj, s3RangeBytes), sum: sha256.New()}
	src := io.TeeReader(in.body, in.sum)
	if obj.Gzip || r.rec.Gzip {
		stored := &countingReader{r: src}
		if in.gz, err = gzip.NewReader(stored); err != nil {
			in.close()
			return nil, failBatch(jobs.BatchErrInput, "The input is not gzip-compressed data: %s.", err)
		}
		src = &ratioReader{r: in.gz, stored: stored, ratio: cmp.Or(r.rec.GzipRatio, defaultGzipRatio)}
	}
	csv := r.rec.Format == jobs.BatchCSV
	if csv {
		in.records = batchfile.NewCSVReader(src, r.rec.MaxRecord)
		if err := r.header(ctx, in.records); err != nil {
			in.close()
			return nil, err
		}
	} else {
		in.records = batchfile.NewJSONLReader(src, r.rec.MaxRecord)
	}
	r.cw.Resume(r.rec.S3Stored)
	for range r.rec.S3Stored * r.rec.ChunkRows {
		if _, err := in.records.Next(); err != nil {
			in.close()
			return nil, r.readErr(err, in.records)
		}
	}
	return in, nil
}

// gzipRatioAfter is how much of a gzip input is decompressed before its
// ratio is checked, and defaultGzipRatio the bound of a batch recorded
// without one: the API's (see api.Config.GzipMaxRatio).
const (
	gzipRatioAfter   = 1 << 20
	defaultGzipRatio = 200
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ratioReader fails a gzip input that, past its first gzipRatioAfter
// bytes, expands more than ratio-fold: the byte bound applies to the
// stored object, and a small one (a gzip bomb) would otherwise make the
// worker read, store and score as much as the row bound allows.
type ratioReader struct {
	r      io.Reader
	stored *countingReader
	out    int64
	ratio  int64
}

func (g *ratioReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.out += int64(n)
	if g.out > gzipRatioAfter && g.out > g.ratio*g.stored.n {
		return n, failBatch(jobs.BatchErrTooLarge, "The input expands more than %d-fold when decompressed; store it uncompressed, or split it.", g.ratio)
	}
	return n, err
}

// header reads a CSV's header and checks it against the model as the API
// checks an upload's; the first run records it (and the columns the model
// ignores) for the chunk tasks.
func (r *s3Run) header(ctx context.Context, records *batchfile.Reader) error {
	m, ok := r.w.model(r.rec.ModelID)
	if !ok {
		return fmt.Errorf("model %s is not loaded on worker %s", r.rec.ModelID, r.w.cfg.ID)
	}
	head, err := records.Next()
	if err == io.EOF {
		return failBatch(jobs.BatchErrInput, "The CSV is empty; it needs a header row naming the model's inputs.")
	}
	if err != nil {
		return r.readErr(err, records)
	}
	header, err := batchfile.SplitCSV(string(head), nil)
	var d *batchfile.Decoder
	if err == nil {
		d, err = batchfile.NewCSVDecoder(&m.info.Schema, header, r.rec.Mode())
	}
	if err != nil {
		return failBatch(jobs.BatchErrInput, "The CSV header is not usable: %s.", err)
	}
	if r.rec.S3Stored > 0 {
		return nil
	}
	hj, _ := json.Marshal(header)
	fields := []any{jobs.BatchFieldHeader, string(hj)}
	if d.Ignored != nil {
		wj, _ := json.Marshal([]jobs.Warning{{Code: jobs.CodeUnknownField,
			Detail: "The model does not take the columns " + strings.Join(d.Ignored, ", ") + "; they are ignored."}})
		fields = append(fields, jobs.BatchFieldWarnings, string(wj))
	}
	return r.w.rdb.HSet(ctx, jobs.BatchKey(r.id), fields...).Err()
}

// ingest adds the input's next record to the chunks, or, at its end,
// stores the totals and the last chunk and reports done.
func (r *s3Run) ingest(ctx context.Context, in *s3Input) (done bool, err error) {
	rec, err := in.records.Next()
	if err == io.EOF {
		if r.cw.Rows() == 0 {
			return false, failBatch(jobs.BatchErrInput, "The input holds no rows to score.")
		}
		_, _ = io.Copy(in.sum, in.body) // the checksum covers the whole object
		sum := hex.EncodeToString(in.sum.Sum(nil))
		if err := r.w.rdb.HSet(ctx, jobs.BatchKey(r.id), jobs.BatchFieldInputSHA, sum).Err(); err != nil {
			return false, err
		}
		return true, r.cw.Finish(ctx)
	}
	if err != nil {
		return false, r.readErr(err, in.records)
	}
	if r.cw.Rows() >= r.rec.MaxRows {
		return false, failBatch(jobs.BatchErrTooLarge, "The input is over the %d-row limit; split the file.", r.rec.MaxRows)
	}
	return false, r.cw.Add(ctx, rec)
}

// readErr says why the input's records could not be read: an S3 error as
// it is (retried unless final), anything else a fault of the input.
func (r *s3Run) readErr(err error, records *batchfile.Reader) error {
	var s3err *objstore.Error
	var fail *batchFailure
	switch {
	case errors.As(err, &s3err), errors.As(err, &fail):
		return err
	case errors.Is(err, batchfile.ErrRecordTooLong):
		return failBatch(jobs.BatchErrInput, "Line %d: a row is over the %d-byte limit (an unclosed quote, perhaps).", records.Line(), r.rec.MaxRecord)
	}
	return failBatch(jobs.BatchErrInput, "Line %d could not be read: %s.", records.Line(), batchfile.Clip(err.Error(), 200))
}

// failS3Batch records why the batch failed, aborts its uploads, and sends
// its webhook; its chunk tasks still queued find the error and drop out.
func (w *Worker) failS3Batch(ctx context.Context, r *s3Run, fail *batchFailure) error {
	r.log.Warn("S3 batch failed", "code", fail.Code, "detail", fail.Detail)
	if r.exp != nil {
		r.exp.abort(ctx)
	}
	ej, _ := json.Marshal(fail.BatchError)
	if err := w.rdb.HSet(ctx, jobs.BatchKey(r.id), jobs.BatchFieldError, string(ej),
		jobs.BatchFieldFinished, time.Now().UnixMilli()).Err(); err != nil {
		return err
	}
	rec, _, err := w.batchRecord(ctx, r.id)
	if err != nil {
		return err
	}
	return w.scheduleWebhook(ctx, r.id, rec)
}
