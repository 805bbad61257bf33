package jobs

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A group's reply is the list of its members' outcomes; a predict's is its
// one outcome. DecodeReply reads both.
func TestReplyRoundTrip(t *testing.T) {
	outs := []Outcome{
		{RequestID: "a", Body: json.RawMessage(`{"x":1}`)},
		{RequestID: "b", Error: &Error{Code: CodeInvalidInput, Detail: "no"}},
	}
	var msg []byte
	for _, o := range outs {
		b, err := EncodeOutcome(o)
		if err != nil {
			t.Fatal(err)
		}
		msg = AppendReply(msg, b)
	}
	got, err := DecodeReply(msg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(outs, got); diff != "" {
		t.Errorf("group reply %s (-want +got):\n%s", msg, diff)
	}
	one, _ := EncodeOutcome(outs[0])
	if got, err := DecodeReply(one); err != nil || len(got) != 1 || got[0].RequestID != "a" {
		t.Errorf("single reply: %v %v", got, err)
	}
}

// A group whose members disagree on what one block needs is refused.
func TestPredictGroupChecks(t *testing.T) {
	m := PredictPayload{RequestID: "a", ModelID: "21", Options: json.RawMessage(`{}`)}
	other := m
	other.RequestID, other.Options = "b", json.RawMessage(`{"explain":false}`)
	for name, g := range map[string]PredictGroup{
		"empty":         {RetentionSeconds: 60},
		"no retention":  {Members: []PredictPayload{m}},
		"mixed options": {Members: []PredictPayload{m, other}, RetentionSeconds: 60},
	} {
		if _, err := NewPredictGroupTask(g, "t", TaskOptions{Pool: "p", Lane: LaneSync}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewPredictGroupTask(PredictGroup{Members: []PredictPayload{m}, RetentionSeconds: 60}, "t", TaskOptions{Pool: "p", Lane: LaneSync}); err != nil {
		t.Error(err)
	}
}
