package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"
)

// TypePredictGroup is a task carrying several sync predicts of one model
// with the same options, which an API process gathered while earlier ones
// of theirs were in flight: one enqueue, one dequeue and one reply message
// for them all, each still answered and stored as its own job.
const TypePredictGroup = "hokusai:predict-group"

// PredictGroup is the payload of a predict-group task: its members, in the
// order they arrived. Every member has its own request id, tenant, inputs,
// deadline and receipt time; they share the model, the options and the
// reply channel.
type PredictGroup struct {
	Members []PredictPayload `json:"members"`
	// RetentionSeconds is how long each member's outcome is kept at its
	// ResultKey: the API's result TTL, as a predict task's retention.
	RetentionSeconds int64 `json:"retention_s"`
}

// ResultKey holds the stored outcome of a job that rode in a predict
// group, whose own id names no asynq task (see JobRecord.Task).
func ResultKey(requestID string) string { return keyPrefix + "result:" + requestID }

// NewPredictGroupTask builds the task carrying g, with id as its task id
// (no member's: each member's id names its own record and result).
func NewPredictGroupTask(g PredictGroup, id string, o TaskOptions) (*asynq.Task, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encode predict group: %w", err)
	}
	return asynq.NewTask(TypePredictGroup, b,
		asynq.TaskID(id),
		asynq.Queue(Queue(o.Pool, o.Lane)),
		asynq.Retention(o.Retention),
		asynq.MaxRetry(o.MaxRetry),
	), nil
}

// DecodePredictGroup reads a predict-group task's payload.
func DecodePredictGroup(b []byte) (PredictGroup, error) {
	var g PredictGroup
	if err := json.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode predict group: %w", err)
	}
	return g, g.check()
}

// check holds g to what one block of scoring and one reply need.
func (g PredictGroup) check() error {
	if len(g.Members) == 0 {
		return fmt.Errorf("predict group has no members")
	}
	first := g.Members[0]
	for _, m := range g.Members {
		if m.RequestID == "" || m.ModelID != first.ModelID || m.ReplyTo != first.ReplyTo ||
			!bytes.Equal(m.Options, first.Options) {
			return fmt.Errorf("predict group members need request ids and one model, options and reply channel")
		}
	}
	if first.ModelID == "" || g.RetentionSeconds <= 0 {
		return fmt.Errorf("predict group lacks a model id or a retention")
	}
	return nil
}

// AppendReply appends an encoded outcome (EncodeOutcome) to a reply
// message: a predict's reply is its one outcome; a group's is a JSON list
// of its members' outcomes, built by appending each to nil.
func AppendReply(msg, outcome []byte) []byte {
	if msg == nil {
		msg = append(make([]byte, 0, 64+len(outcome)*4), '[')
	} else {
		msg = msg[:len(msg)-1]
		msg = append(msg, ',')
	}
	msg = append(msg, outcome...)
	return append(msg, ']')
}

// DecodeReply reads a reply message: one outcome, or a list of them.
func DecodeReply(b []byte) ([]Outcome, error) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		var os []Outcome
		if err := json.Unmarshal(b, &os); err != nil {
			return nil, err
		}
		return os, nil
	}
	var o Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	return []Outcome{o}, nil
}
