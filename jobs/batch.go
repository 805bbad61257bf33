package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// Batch task types: TypeBatchChunk scores one chunk of a batch;
// TypeBatchNotify sends a canceled batch's webhook (a finished batch's is
// sent by the chunk that finishes it).
const (
	TypeBatchChunk  = "hokusai:batch_chunk"
	TypeBatchNotify = "hokusai:batch_notify"
)

// Batch input formats, as the API stores them in the batch record.
const (
	BatchCSV   = "csv"
	BatchJSONL = "jsonl"
)

// A batch lives under keys sharing the hash tag {id}, so a Lua script can
// touch all of them on one Redis Cluster node.
//
//	hokusai:batch:{id}          hash: the record (see the Batch* field names)
//	hokusai:batch:{id}:in:N     string: chunk N's input records, raw CSV or JSONL lines
//	hokusai:batch:{id}:out:N    string: chunk N's results (internal/batchfile encoding)
//	hokusai:batch:{id}:out:N:staged:RUN  string: one task run's results before they are stored
//	hokusai:batch:{id}:done     set: indices of chunks whose results are stored
//	hokusai:batch:{id}:hooks    list: webhook attempts, JSON, oldest first
func batchBase(id string) string { return keyPrefix + "batch:{" + id + "}" }

// BatchKey is a batch's record, a hash.
func BatchKey(id string) string { return batchBase(id) }

// BatchInKey holds chunk n's input.
func BatchInKey(id string, n int) string { return batchBase(id) + ":in:" + strconv.Itoa(n) }

// BatchOutKey holds chunk n's results.
func BatchOutKey(id string, n int) string { return batchBase(id) + ":out:" + strconv.Itoa(n) }

// BatchStagedOutKey holds chunk n's results as one run of its task wrote
// them, until that run's finish moves them to BatchOutKey (or drops them).
func BatchStagedOutKey(id string, n int, run string) string {
	return BatchOutKey(id, n) + ":staged:" + run
}

// BatchDoneKey is the set of finished chunk indices: counts derive from it,
// so a chunk finished twice counts once.
func BatchDoneKey(id string) string { return batchBase(id) + ":done" }

// BatchHooksKey lists the webhook delivery attempts.
func BatchHooksKey(id string) string { return batchBase(id) + ":hooks" }

// BatchIdemKey maps a tenant's Idempotency-Key to the batch it created.
func BatchIdemKey(tenant, key string) string { return keyPrefix + "batchidem:" + tenant + ":" + key }

// Fields of the batch record hash.
const (
	BatchFieldTenant    = "tenant"
	BatchFieldKeyID     = "key_id" // the submitting API key's id, for usage metering
	BatchFieldModel     = "model_id"
	BatchFieldPool      = "pool"
	BatchFieldFormat    = "format"
	BatchFieldHeader    = "header" // CSV only: the header's column names, a JSON list
	BatchFieldChunkRows = "chunk_rows"
	BatchFieldWindow    = "window"  // chunk N is queued once chunk N-window is done
	BatchFieldExplain   = "explain" // "1" to compute factors (TreeSHAP, slow)
	BatchFieldCallback  = "callback_url"
	BatchFieldCreated   = "created_ms"
	BatchFieldStrict    = "strict"   // "1" to parse rows strictly (Mode)
	BatchFieldAsOf      = "as_of_ms" // the timelines' reference time; default created_ms
	// The CSV header's columns the model does not take, ignored: a JSON
	// list of warnings.
	BatchFieldWarnings = "warnings"
	// Set once the whole upload is stored; until then the batch cannot finish.
	BatchFieldRows   = "rows_total"
	BatchFieldChunks = "chunks"
	// Written by workers.
	BatchFieldStarted  = "started_ms"
	BatchFieldFinished = "finished_ms"
	BatchFieldOK       = "rows_ok"
	BatchFieldFailed   = "rows_failed"
	BatchFieldWarned   = "rows_warned" // scored rows with input warnings
	BatchFieldFinisher = "finisher"    // the chunk whose result completed the batch
	BatchFieldHookDone = "webhook_delivered_ms"
	// Written by the API on DELETE.
	BatchFieldCanceled = "canceled_ms"
	// Written by the API while it reads an upload: chunks stored so far,
	// and the last sign of life of the request (see TypeBatchUploadCheck).
	BatchFieldStoredChunks = "chunks_stored"
	BatchFieldUploadSeen   = "upload_seen_ms"
)

// TypeBatchUploadCheck is the watch on an upload that may fail in a way
// the API cannot clean up after (Redis unreachable then, or the API
// process killed): queued with the batch record, it runs every
// UploadStale until the whole upload is stored; an upload silent for that
// long has failed, and the check fails the batch (BatchErrInterrupted),
// removes its rows and results and lets the record expire in
// InterruptedTTL. The API renews BatchFieldUploadSeen every UploadBeat
// while it reads the body.
const (
	TypeBatchUploadCheck = "hokusai:batch_upload_check"
	UploadBeat           = 10 * time.Second
	UploadStale          = 60 * time.Second
	InterruptedTTL       = time.Hour
)

// BatchUploadCheckPayload is the body of an upload check task: its batch,
// and which check of the batch it is (each has its own task id).
type BatchUploadCheckPayload struct {
	BatchID string `json:"batch_id"`
	Check   int    `json:"check"`
}

// NewBatchUploadCheckTask builds check p.Check of batch p.BatchID, to run
// UploadStale from now on the pool's batch lane.
func NewBatchUploadCheckTask(p BatchUploadCheckPayload, pool string) (*asynq.Task, error) {
	if p.BatchID == "" {
		return nil, fmt.Errorf("batch upload check payload needs a batch id")
	}
	return batchTask(TypeBatchUploadCheck, p, "upload:"+p.BatchID+":"+strconv.Itoa(p.Check), pool, BatchChunkRetries,
		asynq.ProcessIn(UploadStale))
}

// batchTask builds a task of type typ with payload p (JSON) and id on the
// pool's batch lane, retried up to maxRetry times.
func batchTask(typ string, p any, id, pool string, maxRetry int, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return asynq.NewTask(typ, b, append([]asynq.Option{asynq.TaskID(id), asynq.Queue(Queue(pool, LaneBatch)),
		asynq.MaxRetry(maxRetry)}, opts...)...), nil
}

// DecodeBatchUploadCheck reads an upload check task's payload.
func DecodeBatchUploadCheck(b []byte) (BatchUploadCheckPayload, error) {
	var p BatchUploadCheckPayload
	if err := json.Unmarshal(b, &p); err != nil || p.BatchID == "" {
		return p, fmt.Errorf("batch upload check payload lacks a batch id")
	}
	return p, nil
}

// BatchChunkPayload is the body of a batch chunk task: which chunk, nothing
// more. The rows themselves stay in Redis under BatchInKey.
type BatchChunkPayload struct {
	BatchID string `json:"batch_id"`
	Chunk   int    `json:"chunk"`
	ModelID string `json:"model_id"`
}

// BatchChunkRetries is how often a failing chunk task is retried.
const BatchChunkRetries = 10

// Row errors a worker stores for every row of a chunk: one it cannot
// decode at all, and one that failed all its attempts. They reach the
// tenant in the batch's results.
const (
	RowBatchUnusable = "batch_unusable"
	RowChunkFailed   = "chunk_failed"
)

// BatchChunkTaskID is the asynq task id of a chunk, so a chunk is queued once.
func BatchChunkTaskID(batchID string, n int) string {
	return "batch:" + batchID + ":" + strconv.Itoa(n)
}

// NewBatchChunkTask builds chunk p.Chunk's task on the pool's batch lane.
func NewBatchChunkTask(p BatchChunkPayload, pool string, maxRetry int) (*asynq.Task, error) {
	if p.BatchID == "" || p.ModelID == "" || p.Chunk < 0 {
		return nil, fmt.Errorf("batch chunk payload needs a batch id, a model id and a chunk index")
	}
	return batchTask(TypeBatchChunk, p, BatchChunkTaskID(p.BatchID, p.Chunk), pool, maxRetry)
}

// DecodeBatchChunk reads a batch chunk task's payload.
func DecodeBatchChunk(b []byte) (BatchChunkPayload, error) {
	var p BatchChunkPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode batch chunk payload: %w", err)
	}
	if p.BatchID == "" || p.ModelID == "" || p.Chunk < 0 {
		return p, fmt.Errorf("batch chunk payload lacks a batch id, model id or chunk index")
	}
	return p, nil
}

// WebhookAttempt is one delivery attempt of a batch's completion webhook.
type WebhookAttempt struct {
	Attempt int    `json:"attempt"`
	At      int64  `json:"at_ms"`
	Status  int    `json:"status,omitempty"` // HTTP status, 0 when no answer came
	Error   string `json:"error,omitempty"`
}

// Batch statuses as clients see them.
const (
	BatchQueued          = "queued"
	BatchRunning         = "running"
	BatchSucceeded       = "succeeded"
	BatchPartiallyFailed = "partially_failed"
	BatchFailed          = "failed"
	BatchCanceled        = "canceled"
)

// BatchNotifyPayload is the body of a batch notify task.
type BatchNotifyPayload struct {
	BatchID string `json:"batch_id"`
}

// BatchNotifyRetries is how often a notify task whose webhook keeps failing
// runs again; each run makes up to four attempts, so twelve in all, as a
// finished batch's webhook gets.
const BatchNotifyRetries = 2

// NewBatchNotifyTask builds the notify task of a canceled batch on the
// pool's batch lane, once per batch.
func NewBatchNotifyTask(batchID, pool string) (*asynq.Task, error) {
	if batchID == "" {
		return nil, fmt.Errorf("batch notify payload needs a batch id")
	}
	return batchTask(TypeBatchNotify, BatchNotifyPayload{BatchID: batchID}, "notify:"+batchID, pool, BatchNotifyRetries)
}

// DecodeBatchNotify reads a batch notify task's payload.
func DecodeBatchNotify(b []byte) (BatchNotifyPayload, error) {
	var p BatchNotifyPayload
	if err := json.Unmarshal(b, &p); err != nil || p.BatchID == "" {
		return p, fmt.Errorf("batch notify payload lacks a batch id")
	}
	return p, nil
}
