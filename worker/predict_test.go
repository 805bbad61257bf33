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
	one := 1
	warns := []jobs.Warning{{Row: &one, Field: "industry", Code: jobs.CodeUnknownValue, Detail: `"Mining & <co>" is not…`},
		{Field: "", Code: jobs.CodeUnknownField, Detail: "and 3 more"}}
	for _, tc := range []struct {
		preds []any
		in    jobs.Inputs
	}{
		{[]any{lead}, jobs.Inputs{}},
		{[]any{lead, lead}, jobs.Inputs{List: true, Warnings: warns}},
		{[]any{map[string]any{"custom": 1}}, jobs.Inputs{}}, // no AppendJSON: encoding/json
	} {
		got, err := predictBody(p, "rev", tc.preds, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		preds := any(tc.preds[0])
		if tc.in.List {
			preds = tc.preds
		}
		type meta struct {
			APIVersion      string         `json:"api_version"`
			InferenceMethod string         `json:"inference_method"`
			RequestID       string         `json:"request_id"`
			ModelRevision   string         `json:"model_revision"`
			Rows            int            `json:"rows"`
			Warnings        []jobs.Warning `json:"warnings"`
		}
		w := tc.in.Warnings
		if w == nil {
			w = []jobs.Warning{}
		}
		want, _ := json.Marshal(struct {
			ModelID     string    `json:"model_id"`
			Predictions any       `json:"predictions"`
			Metadata    meta      `json:"metadata"`
			Timestamp   time.Time `json:"timestamp"`
		}{"21", preds, meta{APIVersion, InferenceMethod, "req-<1>", "rev", len(tc.preds), w}, time.Time{}})
		var ts struct{ Timestamp string }
		if err := json.Unmarshal(got, &ts); err != nil {
			t.Fatal(err)
		}
		// The old API's form, which partners parse: milliseconds and a Z.
		at, err := time.Parse("2006-01-02T15:04:05.000Z", ts.Timestamp)
		if err != nil || time.Since(at) > time.Minute {
			t.Errorf("timestamp %q (%v) in %s", ts.Timestamp, err, got)
		}
		if g, w := stamp.ReplaceAll(got, nil), stamp.ReplaceAll(want, nil); string(g) != string(w) {
			t.Errorf("got  %s\nwant %s", g, w)
		}
	}
}
