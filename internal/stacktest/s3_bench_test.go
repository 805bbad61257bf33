package stacktest

import (
	"os"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// BenchmarkS3Batch scores the benchmark's lead file (HOKUSAI_BENCH_ROWS,
// default 1,000,000) twice on one stack: uploaded over HTTP, waited for
// and downloaded; then S3 to S3 through the loopback store, from submit
// to the manifest. It reports both times and their ratio.
//
//	go test ./internal/stacktest/ -run '^$' -bench S3Batch -benchtime 1x
func BenchmarkS3Batch(b *testing.B) {
	input, err := os.ReadFile(benchLeads(b))
	if err != nil {
		b.Fatal(err)
	}
	st, _ := fakeS3(b, "leads")
	allow := s3Allow(b, "s3://leads")
	s := startStack(b, stackOptions{noWorker: true, api: api.Config{S3Allow: allow}})
	s.startWorker(srv.URL, worker.Config{S3: st, S3Allow: allow})
	s.waitReady("21")
	putObject(b, st, "s3://leads/exports/leads.csv", input)
	for b.Loop() {
		start := time.Now()
		id := s.acceptedBatch(s.submitBatch(input, "text/csv", "", nil))
		s.waitBatch(id, 10*time.Minute)
		if out := s.results(id, "csv"); len(out) == 0 {
			b.Fatal("no results")
		}
		overHTTP := time.Since(start)

		start = time.Now()
		id = s.acceptedBatch(s.submitS3("s3://leads/exports/leads.csv", "s3://leads/scores/", nil))
		if st := s.waitS3Batch(id, 10*time.Minute); st["status"] != jobs.BatchSucceeded {
			b.Fatalf("S3 batch: %v", st)
		}
		toS3 := time.Since(start)
		b.ReportMetric(overHTTP.Seconds(), "s_http")
		b.ReportMetric(toS3.Seconds(), "s_s3")
		b.ReportMetric(toS3.Seconds()/overHTTP.Seconds(), "s3/http")
	}
}
