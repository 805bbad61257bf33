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
