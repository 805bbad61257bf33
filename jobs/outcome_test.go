package jobs

import (
	"encoding/json"
	"testing"
)

func TestEncodeOutcomeMatchesMarshal(t *testing.T) {
	for _, o := range []Outcome{
		{RequestID: "r-1", Body: json.RawMessage(`{"model_id":"21","predictions":{"lead_score":72}}`)},
		{RequestID: `odd "id" <&>`, Body: json.RawMessage(`[1,2]`)},
		{RequestID: "r-2", Error: &Error{Code: "invalid_input", Detail: "bad"}},
		{RequestID: "r-3"},
	} {
		want, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeOutcome(o)
		if err != nil || string(got) != string(want) {
			t.Errorf("got %s (%v), want %s", got, err, want)
		}
	}
}
