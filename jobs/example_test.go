package jobs_test

import (
	"fmt"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
)

func ExampleQueues() {
	q := jobs.Queues("default")
	fmt.Println(q["default:sync"], q["default:async"], q["default:batch"])
	// Output: 6 3 1
}

func ExampleNewPredictTask() {
	task, err := jobs.NewPredictTask(jobs.PredictPayload{
		RequestID: "6f1c0d1e-0000-4000-8000-000000000021",
		Tenant:    "acme",
		ModelID:   "21",
		Inputs:    []byte(`{"company_size": 250}`),
	}, jobs.TaskOptions{Pool: "default", Lane: jobs.LaneSync, Retention: 24 * time.Hour})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := jobs.DecodePredict(task.Payload())
	fmt.Println(task.Type(), p.ModelID, p.Tenant)
	// Output: hokusai:predict 21 acme
}

func ExampleParseTimeline() {
	asOf := time.Date(2025, time.March, 15, 0, 0, 0, 0, time.UTC)
	for _, text := range []string{"Q2 2025", "1-3 months", "jun '25", "Q4 2024", "Not specified", "soon-ish"} {
		t, ok := jobs.ParseTimeline(text, asOf)
		switch {
		case !ok:
			fmt.Printf("%s: unknown\n", text)
		case t.Missing:
			fmt.Printf("%s: missing\n", text)
		case t.Past:
			fmt.Printf("%s: past, taken as immediate\n", text)
		default:
			fmt.Printf("%s: %.2f months\n", text, t.Months)
		}
	}
	// Output:
	// Q2 2025: 2.05 months
	// 1-3 months: 2.00 months
	// jun '25: 3.06 months
	// Q4 2024: past, taken as immediate
	// Not specified: missing
	// soon-ish: unknown
}
