package stacktest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/leadgen"
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

// BenchmarkS3WorkerRSS scores an S3 input of HOKUSAI_RSS_ROWS rows
// (default 10,000,000, gzip-compressed) with one worker running as a
// process of its own, and reports the worker's peak resident memory
// (VmHWM, Linux): it stays bounded however large the input, since the
// worker holds a few chunks and one output part at a time. Not run by
// make test (generating 10M rows alone takes a minute).
//
//	go test ./internal/stacktest/ -run '^$' -bench S3WorkerRSS -benchtime 1x -timeout 60m
func BenchmarkS3WorkerRSS(b *testing.B) {
	rows := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("HOKUSAI_RSS_ROWS")); err == nil && v > 0 {
		rows = v
	}
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	if err := leadgen.WriteCSV(zw, rows, 1, nil); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	st, endpoint := fakeS3(b, "leads")
	putObject(b, st, "s3://leads/exports/leads.csv.gz", zbuf.Bytes())
	zbuf = bytes.Buffer{}
	s := startStack(b, stackOptions{noWorker: true, api: api.Config{S3Allow: s3Allow(b, "s3://leads")}})
	w := s.workerProcess(endpoint, "s3://leads")
	s.waitReady("21")
	for b.Loop() {
		id := s.acceptedBatch(s.submitS3("s3://leads/exports/leads.csv.gz", "s3://leads/scores/", nil))
		if st := s.waitS3Batch(id, 50*time.Minute); st["status"] != jobs.BatchSucceeded || st["rows_total"] != float64(rows) {
			b.Fatalf("S3 batch: %v", st)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.Process.Pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
			b.ReportMetric(float64(n)/1024, "peak-rss-MiB")
			b.ReportMetric(float64(rows), "rows")
		}
	}
}
