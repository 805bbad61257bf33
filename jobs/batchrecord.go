package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// BatchRecord is a batch's record (the hash at BatchKey) as both tiers read
// it: DecodeBatchRecord is its one decoder. Writers set the hash's fields
// by their BatchField* names, in HSET calls and Lua scripts, so that each
// writes only what it owns; readers take the whole record through here.
// Times are zero and counts 0 when their field is unset.
type BatchRecord struct {
	Tenant, ModelID, Pool, Format string
	KeyID                         string // the submitting API key's id (never the key)
	CallbackURL                   string
	ChunkRows                     int
	Window                        int // chunk N is queued once chunk N-Window is done
	Explain, Strict               bool
	Created, AsOf                 time.Time
	// Warnings are the upload's own: CSV columns the model does not take.
	Warnings []Warning
	// Stored says the whole upload is stored: Rows and Chunks are final and
	// the batch can finish.
	Stored       bool
	Rows, Chunks int
	// While the body is uploaded: chunks stored so far, and when the
	// upload last said it was alive.
	StoredChunks int
	UploadSeen   time.Time
	// Written by workers, and by the API on cancel.
	Started, Finished, Canceled, WebhookDelivered time.Time
	OK, Failed, Warned                            int
	Finisher                                      string // the chunk whose result completed the batch
	// An S3 batch's locations and bounds, and its worker's checkpoints
	// (see batchs3.go). Exported is when its output was written: until
	// then it is running, whatever its chunks.
	InputURL, OutputURL string
	Gzip                bool
	GzipRatio           int64
	MaxBytes            int64
	MaxRows, MaxRecord  int
	S3Stored            int
	S3Export            string
	Exported            time.Time
	Schedule            string // the schedule that started the batch, if one did
	// RowLimitKey and RowLimitTenant are an S3 batch's batch row limits.
	RowLimitKey, RowLimitTenant string
	Error                       *BatchError // the batch failed as a whole

	header string // CSV only: a JSON list, see CSVHeader
}

// DecodeBatchRecord reads a record from its hash fields; ok is false when
// there is none (the batch does not exist, or has expired).
func DecodeBatchRecord(h map[string]string) (r BatchRecord, ok bool) {
	if len(h) == 0 {
		return r, false
	}
	num := func(f string) int { n, _ := strconv.Atoi(h[f]); return n }
	at := func(f string) time.Time {
		ms, err := strconv.ParseInt(h[f], 10, 64)
		if err != nil || ms == 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms).UTC()
	}
	r = BatchRecord{
		Tenant: h[BatchFieldTenant], KeyID: h[BatchFieldKeyID], ModelID: h[BatchFieldModel], Pool: h[BatchFieldPool], Format: h[BatchFieldFormat],
		CallbackURL: h[BatchFieldCallback], ChunkRows: num(BatchFieldChunkRows), Window: num(BatchFieldWindow),
		Explain: h[BatchFieldExplain] == "1", Strict: h[BatchFieldStrict] == "1",
		Created: at(BatchFieldCreated), AsOf: at(BatchFieldAsOf), Warnings: []Warning{},
		Stored: h[BatchFieldChunks] != "", Rows: num(BatchFieldRows), Chunks: num(BatchFieldChunks),
		StoredChunks: num(BatchFieldStoredChunks), UploadSeen: at(BatchFieldUploadSeen),
		Started: at(BatchFieldStarted), Finished: at(BatchFieldFinished), Canceled: at(BatchFieldCanceled),
		WebhookDelivered: at(BatchFieldHookDone),
		OK:               num(BatchFieldOK), Failed: num(BatchFieldFailed), Warned: num(BatchFieldWarned),
		Finisher: h[BatchFieldFinisher], header: h[BatchFieldHeader],
		InputURL: h[BatchFieldInputURL], OutputURL: h[BatchFieldOutputURL], Gzip: h[BatchFieldGzip] == "1",
		MaxRows: num(BatchFieldMaxRows), MaxRecord: num(BatchFieldMaxRecord), S3Stored: num(BatchFieldS3Stored),
		S3Export: h[BatchFieldS3Export], Exported: at(BatchFieldExported),
		Schedule: h[BatchFieldSchedule], RowLimitKey: h[BatchFieldRowLimitKey], RowLimitTenant: h[BatchFieldRowLimitTenant],
	}
	r.MaxBytes, _ = strconv.ParseInt(h[BatchFieldMaxBytes], 10, 64)
	r.GzipRatio, _ = strconv.ParseInt(h[BatchFieldGzipRatio], 10, 64)
	if e := h[BatchFieldError]; e != "" {
		r.Error = &BatchError{}
		if json.Unmarshal([]byte(e), r.Error) != nil {
			r.Error = &BatchError{Code: BatchErrInput, Detail: e}
		}
	}
	if w := h[BatchFieldWarnings]; w != "" {
		_ = json.Unmarshal([]byte(w), &r.Warnings) // the API wrote it; a bad one reads as none
	}
	return r, true
}

// CSVHeader is a CSV batch's header, its column names in order.
func (r BatchRecord) CSVHeader() ([]string, error) {
	var header []string
	if err := json.Unmarshal([]byte(r.header), &header); err != nil {
		return nil, fmt.Errorf("the batch record's header is not a JSON list: %v", err)
	}
	return header, nil
}

// Mode is how the batch's rows are read: strictly if it asked, with
// timelines as of its as_of time, or else its submission.
func (r BatchRecord) Mode() Mode {
	at := r.AsOf
	if at.IsZero() {
		at = r.Created
	}
	if at.IsZero() {
		at = time.UnixMilli(0).UTC()
	}
	return Mode{Strict: r.Strict, AsOf: at}
}

// Status is the batch's status once done of its chunks are finished.
func (r BatchRecord) Status(done int) string {
	switch {
	case !r.Canceled.IsZero():
		return BatchCanceled
	case r.Error != nil:
		return BatchFailed
	case r.Stored && r.Chunks == done && r.OutputURL != "" && r.Exported.IsZero():
		return BatchRunning // scored, its output being written
	case r.Stored && r.Chunks == done:
		switch {
		case r.Failed == 0:
			return BatchSucceeded
		case r.OK == 0:
			return BatchFailed
		}
		return BatchPartiallyFailed
	case !r.Started.IsZero():
		return BatchRunning
	}
	return BatchQueued
}
