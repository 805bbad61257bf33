package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/leadgen"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/objstore/objstoretest"
)

// devCLI runs `hokusai dev` on the package's Redis, with more environment
// if given, until the test ends and returns a function that runs the CLI
// against it.
func devCLI(t *testing.T, more map[string]string) func(args ...string) (stdout, stderr string, err error) {
	t.Helper()
	models, _ := filepath.Abs(filepath.Join("..", "..", demoModelDir))
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"REDIS_URL": srv.URL}
	maps.Copy(env, more)
	getenv := func(k string) string { return env[k] }
	go func() {
		done <- run(ctx, []string{"hokusai", "dev", "--listen", "127.0.0.1:0", "--models", models}, getenv, nil, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hokusai dev stopped with %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() && (env["HOKUSAI_API_URL"] == "" || env["HOKUSAI_API_KEY"] == "") {
		if m := regexp.MustCompile(`(http://[0-9.:]+)/api/v1`).FindStringSubmatch(sc.Text()); m != nil {
			env["HOKUSAI_API_URL"] = m[1]
		}
		if m := regexp.MustCompile(`(hk_[A-Za-z0-9_-]+)`).FindStringSubmatch(sc.Text()); m != nil {
			env["HOKUSAI_API_KEY"] = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"hokusai"}, args...), getenv, nil, &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
}

// submitWait generates rows leads and submits them with --wait -o out,
// retrying while the dev worker is not ready yet; it returns the batch id
// and the progress lines.
func submitWait(t *testing.T, cli func(args ...string) (string, string, error), rows, out string) (string, string) {
	t.Helper()
	leads := filepath.Join(t.TempDir(), "leads.csv")
	if _, _, err := cli("batch", "gen-leads", rows, "-o", leads); err != nil {
		t.Fatal(err)
	}
	var id, progress string
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		id, progress, err = cli("batch", "submit", leads, "--model", "21", "--wait", "-o", out)
		if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "no_ready_worker") {
			break
		}
	}
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, progress)
	}
	return strings.TrimSpace(id), progress
}

// The batch commands against `hokusai dev`: generate leads, submit and wait
// with plain progress lines (stderr is not a terminal), download, status,
// cancel of a finished batch, and the tenant's webhook secret.
func TestBatchCommands(t *testing.T) {
	rdb := redistest.Client(t, srv)
	cli := devCLI(t, nil)
	out := filepath.Join(t.TempDir(), "scored.csv")
	id, progress := submitWait(t, cli, "5_000", out)
	if !strings.Contains(progress, "batch "+id+": succeeded, 5000/5000 rows, 0 failed") {
		t.Errorf("progress lines:\n%s", progress)
	}
	f, _ := os.Open(out)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 5001 || recs[5000][1] != "L4999" {
		t.Fatalf("results: %d rows, err %v", len(recs), err)
	}
	status, _, err := cli("batch", "status", id)
	if err != nil || !strings.Contains(status, `"status": "succeeded"`) {
		t.Errorf("status: %v\n%s", err, status)
	}
	if _, _, err := cli("batch", "cancel", id); err == nil || !strings.Contains(err.Error(), "already succeeded") {
		t.Errorf("cancel of a finished batch: %v", err)
	}
	jsonl := filepath.Join(t.TempDir(), "scored.jsonl")
	if _, _, err := cli("batch", "results", id, "-o", jsonl); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(jsonl); bytes.Count(b, []byte("\n")) != 5001 || !bytes.HasPrefix(b, []byte(`{"row":0,"id":"L0"`)) ||
		!bytes.HasSuffix(b, []byte(`{"end":true,"rows":5000,"status":"succeeded"}`+"\n")) {
		t.Errorf("JSONL results start %.60s, end %s", b, b[max(0, len(b)-60):])
	}
	secret, _, err := cli("keys", "secret", "--tenant", "acme")
	want, _ := tenant.WebhookSecret(t.Context(), rdb, "acme")
	if err != nil || strings.TrimSpace(secret) != want {
		t.Errorf("keys secret printed %q, err %v", secret, err)
	}
}

func TestProgressBar(t *testing.T) {
	eta := 3.0
	got := progressBar(batchState{RowsTotal: 1000, RowsDone: 500, RowsFailed: 2, ETA: &eta}, 250)
	if !strings.HasPrefix(got, "[###############---------------]  50% 500/1000 rows, 2 failed, 250 rows/s, ETA 3s") {
		t.Errorf("bar %q", got)
	}
}

// A download the API breaks off (a chunk's stored results are unreadable,
// past the API's first 256 KiB, so after its header went out) makes `batch
// results` fail, saying the file was cut short, and leaves neither OUT nor
// OUT.part behind.
func TestBatchResultsCutShort(t *testing.T) {
	rdb := redistest.Client(t, srv)
	cli := devCLI(t, nil)
	dir := t.TempDir()
	id, _ := submitWait(t, cli, "10_000", filepath.Join(dir, "whole.csv"))
	// dev's chunks are 4,096 rows: chunks 0 and 1 overflow the API's buffer.
	if err := rdb.Set(t.Context(), jobs.BatchOutKey(id, 2), "not a chunk", redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cut.csv", "cut.jsonl"} {
		out := filepath.Join(dir, name)
		_, _, err := cli("batch", "results", id, "-o", out)
		if err == nil || !strings.Contains(err.Error(), "cut short after") || !strings.HasSuffix(err.Error(), out+" not written") {
			t.Errorf("%s: %v", name, err)
		}
		for _, f := range []string{out, out + ".part"} {
			if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s is left behind (%v)", f, err)
			}
		}
	}
}

// The check of a downloaded file against the API's count: whole files
// pass, and a file without the trailers, short of the count the API or the
// batch gives, without its JSONL end marker, or of a canceled batch fails.
func TestResultsCheck(t *testing.T) {
	sent := func(rows, status string) http.Header {
		return http.Header{"X-Hokusai-Rows": {rows}, "X-Hokusai-Status": {status}}
	}
	csvWhole := "row,id,lead_score,error_code,error_detail\n0,a,87,,\n1,b,,invalid_input,\"two\nlines, \"\"quoted\"\"\"\n"
	rows := `{"row":0,"id":"a","lead_score":87}` + "\n" + `{"row":1,"id":"b","error":{"code":"invalid_input"}}` + "\n"
	jsonlWhole := rows + `{"end":true,"rows":2,"status":"partially_failed"}` + "\n"
	for _, tc := range []struct {
		name, format, body string
		trailer            http.Header
		want               int
		err                string
	}{
		{"whole CSV", "csv", csvWhole, sent("2", "partially_failed"), 2, ""},
		{"whole JSONL", "jsonl", jsonlWhole, sent("2", "partially_failed"), 2, ""},
		{"no trailers", "csv", csvWhole, http.Header{}, 2, "cut short after 2 rows"},
		{"fewer rows than the API sent", "csv", csvWhole, sent("3", "succeeded"), 3, "the API sent 3 rows, the file holds 2"},
		{"JSONL without its end marker", "jsonl", rows, sent("2", "partially_failed"), 2, "end marker"},
		{"JSONL marker of other rows", "jsonl", rows + `{"end":true,"rows":3,"status":"partially_failed"}` + "\n",
			sent("2", "partially_failed"), 2, "end marker"},
		{"short of rows_total", "jsonl", jsonlWhole, sent("2", "partially_failed"), 3, "holds 2 of the batch's 3 rows"},
		{"canceled", "jsonl", rows + `{"end":true,"rows":2,"status":"canceled"}` + "\n", sent("2", "canceled"), 5,
			"canceled after 2 of its 5 rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rowCounter{csv: tc.format == "csv"}
			for b := []byte(tc.body); len(b) > 0; b = b[min(len(b), 7):] { // in pieces, as io.Copy writes
				_, _ = r.Write(b[:min(len(b), 7)])
			}
			err := r.check(tc.trailer, tc.want)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("check: %v, want %q", err, tc.err)
			}
		})
	}
}

// An S3 batch from the CLI: submit --wait reads the input where it lies,
// shows progress until the output is written, and says where; a batch
// whose input is missing fails with the worker's reason.
func TestBatchSubmitS3(t *testing.T) {
	redistest.Client(t, srv)
	st, endpoint := objstoretest.New(t, "leads")
	// The SDK's credential chain reads the process's environment.
	t.Setenv("AWS_ACCESS_KEY_ID", objstoretest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", objstoretest.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	cli := devCLI(t, map[string]string{"HOKUSAI_S3_ALLOW": "s3://leads", "AWS_ENDPOINT_URL_S3": endpoint})
	var leads bytes.Buffer
	if err := leadgen.WriteCSV(&leads, 3000, 1, nil); err != nil {
		t.Fatal(err)
	}
	in, _ := s3url.Parse("s3://leads/exports/today.csv")
	if err := st.Put(t.Context(), in, leads.Bytes(), "text/csv"); err != nil {
		t.Fatal(err)
	}
	var id, progress string
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		id, progress, err = cli("batch", "submit", "s3://leads/exports/today.csv", "--model", "21", "--output", "s3://leads/scores/", "--wait")
		if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "no_ready_worker") {
			break
		}
	}
	id = strings.TrimSpace(id)
	if err != nil || !strings.Contains(progress, "batch "+id+": succeeded, 3000/3000 rows, 0 failed") ||
		!strings.Contains(progress, "under s3://leads/scores/") {
		t.Fatalf("submit: %v\n%s", err, progress)
	}
	out, _ := s3url.Parse("s3://leads/scores/results.csv")
	obj, err := st.Stat(t.Context(), out)
	if err != nil || obj.Size == 0 {
		t.Fatalf("results.csv: %+v %v", obj, err)
	}
	_, progress, err = cli("batch", "submit", "s3://leads/exports/missing.csv", "--model", "21", "--output", "s3://leads/scores/x/", "--wait")
	if err == nil || !strings.Contains(err.Error(), "input_failed") {
		t.Fatalf("a missing input: %v\n%s", err, progress)
	}
	if _, _, err := cli("batch", "submit", "s3://leads/exports/today.csv", "--model", "21"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("no --output: %v", err)
	}
}
