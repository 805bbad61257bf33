package worker

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

// predictBody writes what encoding/json writes for the response's shape.
func TestPredictBodyMatchesMarshal(t *testing.T) {
	lead := model.Prediction{Task: model.TaskLeadScoring, LeadScore: 72, ConversionProbability: 0.725,
		Recommendation: "Hot", Confidence: 0.25, Factors: []string{"Demo requested (+)"},
		FactorDetails: []model.Factor{{Feature: "demo_requested", Contribution: 1.5}}}
	p := jobs.PredictPayload{RequestID: "req-<1>", ModelID: "21"}
	stamp := regexp.MustCompile(`"timestamp":"[^"]*"`)
	for _, tc := range []struct {
		preds []any
		list  bool
	}{
		{[]any{lead}, false},
		{[]any{lead, lead}, true},
		{[]any{map[string]any{"custom": 1}}, false}, // no AppendJSON: encoding/json
	} {
		got, err := predictBody(p, "rev", tc.preds, tc.list)
		if err != nil {
			t.Fatal(err)
		}
		var preds any = tc.preds[0]
		if tc.list {
			preds = tc.preds
		}
		type meta struct {
			APIVersion    string `json:"api_version"`
			RequestID     string `json:"request_id"`
			ModelRevision string `json:"model_revision"`
			Rows          int    `json:"rows"`
		}
		want, _ := json.Marshal(struct {
			ModelID     string    `json:"model_id"`
			Predictions any       `json:"predictions"`
			Metadata    meta      `json:"metadata"`
			Timestamp   time.Time `json:"timestamp"`
		}{"21", preds, meta{APIVersion, "req-<1>", "rev", len(tc.preds)}, time.Time{}})
		var ts struct{ Timestamp time.Time }
		if err := json.Unmarshal(got, &ts); err != nil || time.Since(ts.Timestamp) > time.Minute {
			t.Errorf("timestamp %v (%v) in %s", ts.Timestamp, err, got)
		}
		if g, w := stamp.ReplaceAll(got, nil), stamp.ReplaceAll(want, nil); string(g) != string(w) {
			t.Errorf("got  %s\nwant %s", g, w)
		}
	}
}
