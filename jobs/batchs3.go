package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeBatchS3 runs an S3 batch: it streams the input object into chunks
// (the chunk tasks score them as they score an upload's), and writes the
// chunks' results, in input order, to the output prefix as they finish.
// One task carries a batch from start to end; it checkpoints in the batch
// record, so a run that dies resumes where the last one stopped.
const TypeBatchS3 = "hokusai:batch_s3"

// Fields of an S3 batch's record, besides the common ones.
const (
	BatchFieldInputURL  = "input_url"  // s3://bucket/key
	BatchFieldOutputURL = "output_url" // s3://bucket/prefix/
	BatchFieldGzip      = "gzip"       // "1": the input is gzip-compressed whatever its metadata says
	// BatchFieldGzipRatio bounds how far a gzip input may expand past its
	// first MiB, as the API bounds a gzip upload (HOKUSAI_GZIP_MAX_RATIO).
	BatchFieldGzipRatio = "gzip_max_ratio"
	// Bounds the API's BatchConfig sets, applied by the worker reading the
	// object: its stored bytes, its rows and one record's bytes.
	BatchFieldMaxBytes  = "max_bytes"
	BatchFieldMaxRows   = "max_rows"
	BatchFieldMaxRecord = "max_record_bytes"
	// Written by the worker: chunks stored so far (the ingest checkpoint),
	// the export checkpoint (JSON, see the worker), when the output was
	// written, and why the batch failed as a whole (a code and a sentence,
	// JSON), if it did.
	BatchFieldS3Stored = "s3_stored"
	BatchFieldS3Export = "s3_export"
	BatchFieldExported = "exported_ms"
	BatchFieldError    = "error"
)

// BatchS3ExportKey holds an S3 batch's output bytes rendered but not yet
// uploaded as a part (under the part size), output by output, as of the
// last export checkpoint.
func BatchS3ExportKey(id, output string) string { return batchBase(id) + ":s3:" + output }

// S3AllowKey is the set of a tenant's own allowed S3 locations
// ("s3://bucket" or "s3://bucket/prefix"), on top of HOKUSAI_S3_ALLOW.
func S3AllowKey(tenant string) string { return keyPrefix + "s3allow:" + tenant }

// BatchS3Payload is the body of an S3 batch task.
type BatchS3Payload struct {
	BatchID string `json:"batch_id"`
}

// BatchS3Retries is how often an S3 batch task that fails (S3 or Redis
// unreachable) runs again; each run resumes from the last checkpoint.
const BatchS3Retries = 10

// BatchS3Timeout bounds one run of an S3 batch task: a 10,000,000-row
// batch takes about a minute a core, and a slow store more.
const BatchS3Timeout = 24 * time.Hour

// NewBatchS3Task builds batch id's S3 task on the pool's batch lane, once
// per batch.
func NewBatchS3Task(id, pool string) (*asynq.Task, error) {
	if id == "" {
		return nil, fmt.Errorf("S3 batch payload needs a batch id")
	}
	return batchTask(TypeBatchS3, BatchS3Payload{BatchID: id}, "s3:"+id, pool, BatchS3Retries, asynq.Timeout(BatchS3Timeout))
}

// DecodeBatchS3 reads an S3 batch task's payload.
func DecodeBatchS3(b []byte) (BatchS3Payload, error) {
	var p BatchS3Payload
	if err := json.Unmarshal(b, &p); err != nil || p.BatchID == "" {
		return p, fmt.Errorf("S3 batch payload lacks a batch id")
	}
	return p, nil
}

// BatchError is why a batch failed as a whole (its input unreadable, its
// output unwritable), as the batch status shows it.
type BatchError struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Codes of BatchError.
const (
	BatchErrForbidden   = "forbidden"     // the location is not on the allow-list
	BatchErrInput       = "input_failed"  // the input could not be read or parsed
	BatchErrOutput      = "output_failed" // the output could not be written
	BatchErrTooLarge    = "payload_too_large"
	BatchErrUnavailable = "s3_unavailable" // this worker has no S3 client
	BatchErrRateLimited = "rate_limited"   // the rows read passed a batch row quota
	// The upload of rows in the request body stopped before the whole
	// file was stored (see TypeBatchUploadCheck).
	BatchErrInterrupted = "upload_interrupted"
)

// An S3 batch's batch row limits ("1000000/d", "unlimited"), its key's and
// its tenant's as of its submission: the worker counts the rows it reads
// against them, chunk by chunk.
const (
	BatchFieldRowLimitKey    = "row_limit_key"
	BatchFieldRowLimitTenant = "row_limit_tenant"
)

// BatchFieldSchedule names the schedule whose run started a batch.
const BatchFieldSchedule = "schedule_id"

// BatchFieldInputSHA is the SHA-256 of an S3 batch's input object, as
// stored (compressed or not), recorded once the whole of it is read.
const BatchFieldInputSHA = "input_sha256"
