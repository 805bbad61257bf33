package model_test

import (
	"fmt"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

func ExampleModel_Predict() {
	m, err := model.Load("../../models/sales-lead-scoring")
	if err != nil {
		panic(err)
	}
	received := time.Date(2025, 3, 15, 9, 0, 0, 0, time.UTC) // timelines are read as of this
	row, ferrs, _ := m.Schema().Parse(map[string]any{
		"engagement_score": 85.0, "demo_requested": true, "budget_confirmed": true,
		"title": "VP Sales", "decision_timeline": "Q1 2025",
	}, jobs.Mode{AsOf: received})
	if ferrs != nil {
		panic(ferrs) // the API answers 422 with these
	}
	preds, err := m.Predict([]jobs.Row{row})
	if err != nil {
		panic(err)
	}
	p := preds[0]
	fmt.Println(p.LeadScore, p.Recommendation, p.Factors)
	// A value the model does not know: scored as the field's default, with
	// a warning; strict parsing refuses it.
	_, _, warns := m.Schema().Parse(map[string]any{"industry": "Mining"}, jobs.Mode{AsOf: received})
	fmt.Println(warns[0].Code, warns[0].Detail)
	_, ferrs, _ = m.Schema().Parse(map[string]any{"industry": "Mining"}, jobs.Mode{Strict: true, AsOf: received})
	fmt.Println(ferrs[0].Code)
	// Output:
	// 97 Hot [Engagement score (+) Budget confirmed (+) Demo requested (+)]
	// unknown_value "Mining" is not a value this model knows; scored as "Other"
	// invalid_value
}
