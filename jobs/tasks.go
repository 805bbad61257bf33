package jobs

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

// Task type names.
const (
	TypePredict = "hokusai:predict"
)

// Lane is one of a pool's three queues, in priority order.
type Lane string

// The lanes of a pool. Sync work is what a partner waits on; batch work never
// delays it.
const (
	LaneSync  Lane = "sync"
	LaneAsync Lane = "async"
	LaneBatch Lane = "batch"
)

// DefaultPool is the pool a model or worker belongs to when none is named.
const DefaultPool = "default"

// Queue names the asynq queue of a pool's lane: "{pool}:{lane}".
func Queue(pool string, lane Lane) string { return pool + ":" + string(lane) }

// PoolOf is the pool of a queue named by Queue.
func PoolOf(queue string) string {
	if i := strings.LastIndexByte(queue, ':'); i >= 0 {
		return queue[:i]
	}
	return queue
}

// Lanes are every lane, in priority order.
var Lanes = []Lane{LaneSync, LaneAsync, LaneBatch}

// laneWeight is how often workers consume a lane relative to the others.
var laneWeight = map[Lane]int{LaneSync: 6, LaneAsync: 3, LaneBatch: 1}

// Queues returns a pool's queues with the weights workers consume them by:
// all three lanes, or only the lanes given.
func Queues(pool string, lanes ...Lane) map[string]int {
	if len(lanes) == 0 {
		lanes = Lanes
	}
	q := make(map[string]int, len(lanes))
	for _, l := range lanes {
		q[Queue(pool, l)] = laneWeight[l]
	}
	return q
}

// ParseLane reads a lane name.
func ParseLane(s string) (Lane, error) {
	if _, ok := laneWeight[Lane(s)]; !ok {
		return "", fmt.Errorf("lane %q is not sync, async or batch", s)
	}
	return Lane(s), nil
}

// Redis keys both tiers agree on, besides asynq's own.
const keyPrefix = "hokusai:"

// WakeKey is the list the API pushes to after enqueueing work on a pool's
// lane and idle workers consuming that lane block on, so pickup does not wait
// for a poll. Each lane has its own list so a worker never swallows a
// wake-up meant for a lane it does not serve.
func WakeKey(pool string, lane Lane) string { return keyPrefix + "wake:{" + pool + "}:" + string(lane) }

// ReplyChannel is the pub/sub channel an API process receives completions on.
func ReplyChannel(instance string) string { return keyPrefix + "reply:" + instance }

// JobKey holds a job's record (its queue and tenant), written at enqueue.
func JobKey(requestID string) string { return keyPrefix + "job:" + requestID }

// CallerGoneKey marks a sync job whose caller left before it was
// answered: a worker that picks the task up after its deadline drops it.
// Without the mark a late task runs, so a 504, which tells its caller to
// poll, needs no write that a Redis outage could lose.
func CallerGoneKey(requestID string) string { return keyPrefix + "gone:" + requestID }

// NewRequestID returns a fresh request id. It is also the asynq task id.
func NewRequestID() string { return uuid.NewString() }

// PredictPayload is the body of a predict task.
type PredictPayload struct {
	RequestID string `json:"request_id"`
	Tenant    string `json:"tenant"`
	// KeyID is the id of the API key that sent it (never the key), for
	// usage metering.
	KeyID   string `json:"key_id,omitempty"`
	ModelID string `json:"model_id"`
	// Inputs is the caller's "inputs" value as sent: one object or a list of
	// objects. The worker validates it against the schema it loaded.
	Inputs  json.RawMessage `json:"inputs"`
	Options json.RawMessage `json:"options,omitempty"`
	// ReplyTo is the API process's reply channel; empty when nobody waits.
	ReplyTo string `json:"reply_to,omitempty"`
	// Deadline (Unix ms) is when a waiting caller gives up. asynq keeps
	// deadlines in whole seconds, so the real one travels here. A sync task
	// picked up after it is dropped if its caller left (see CallerGoneKey).
	Deadline   int64  `json:"deadline_ms,omitempty"`
	EnqueuedAt int64  `json:"enqueued_ms"`
	Trace      string `json:"traceparent,omitempty"`
}

// TaskOptions are how a predict task is enqueued.
type TaskOptions struct {
	Pool      string
	Lane      Lane
	Retention time.Duration
	MaxRetry  int
}

// NewPredictTask builds the asynq task for p; its task id is p.RequestID so a
// request is enqueued at most once and can be found by its id.
func NewPredictTask(p PredictPayload, o TaskOptions) (*asynq.Task, error) {
	if p.RequestID == "" || p.ModelID == "" {
		return nil, fmt.Errorf("predict payload needs a request id and a model id")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode predict payload: %w", err)
	}
	return asynq.NewTask(TypePredict, b,
		asynq.TaskID(p.RequestID),
		asynq.Queue(Queue(o.Pool, o.Lane)),
		asynq.Retention(o.Retention),
		asynq.MaxRetry(o.MaxRetry),
	), nil
}

// DecodePredict reads a predict task's payload.
func DecodePredict(b []byte) (PredictPayload, error) {
	var p PredictPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode predict payload: %w", err)
	}
	if p.RequestID == "" || p.ModelID == "" {
		return p, fmt.Errorf("predict payload lacks a request id or model id")
	}
	return p, nil
}

// JobRecord is what the API stores at enqueue so a job can be found, and
// scoped to its tenant, by request id alone.
type JobRecord struct {
	Queue     string `json:"queue"`
	Tenant    string `json:"tenant"`
	ModelID   string `json:"model_id"`
	CreatedAt int64  `json:"created_ms"`
	// CanceledAt is set (Unix ms) once the tenant cancels the job.
	CanceledAt int64 `json:"canceled_ms,omitempty"`
	// Task is the id of the predict-group task carrying the job, when it
	// rides in one; its outcome is then stored at ResultKey.
	Task string `json:"task,omitempty"`
}

// Error is a failure as the client sees it: a stable code and a sentence.
type Error struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
	// Fields lists per-field problems for invalid_input.
	Fields []FieldError `json:"errors,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// Codes of the failures a worker stores in an Outcome. The API reads them:
// a canceled job, and one whose caller left before it ran, show as
// "canceled"; the others as failed.
const (
	OutcomeCallerGone  = "caller_gone"
	OutcomeCanceled    = "canceled"
	OutcomeModelFailed = "model_failed"
)

// Outcome is what a worker stores as a task's result (asynq ResultWriter) and
// publishes on the reply channel: the response body on success, or an error.
type Outcome struct {
	RequestID string `json:"request_id"`
	// Body is the predict response body exactly as the API returns it.
	Body  json.RawMessage `json:"body,omitempty"`
	Error *Error          `json:"error,omitempty"`
}

// EncodeOutcome encodes o as json.Marshal does. A success (a body, no
// error) is framed by hand: Marshal would re-scan the body, which the
// worker has just written and which can be large.
func EncodeOutcome(o Outcome) ([]byte, error) {
	if o.Error != nil || len(o.Body) == 0 {
		return json.Marshal(o)
	}
	id, err := json.Marshal(o.RequestID)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(o.Body)+len(id)+32)
	b = append(b, `{"request_id":`...)
	b = append(b, id...)
	b = append(b, `,"body":`...)
	b = append(b, o.Body...)
	return append(b, '}'), nil
}
