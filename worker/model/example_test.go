package model_test

import (
	"fmt"

	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

func ExampleModel_Predict() {
	m, err := model.Load("../../models/sales-lead-scoring")
	if err != nil {
		panic(err)
	}
	row, ferrs := m.Schema().Validate(map[string]any{
		"engagement_score": 85.0, "demo_requested": true, "budget_confirmed": true,
		"title": "VP Sales", "decision_timeline": "immediate",
	})
	if ferrs != nil {
		panic(ferrs) // the API answers 422 with these
	}
	preds, err := m.Predict([]jobs.Row{row})
	if err != nil {
		panic(err)
	}
	p := preds[0]
	fmt.Println(p.LeadScore, p.Recommendation, p.Factors)
	_, ferrs = m.Schema().Validate(map[string]any{"industry": "Mining"})
	fmt.Println(ferrs[0].Code)
	// Output:
	// 97 Hot [Engagement score (+) Budget confirmed (+) Demo requested (+)]
	// invalid_value
}
