package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/internal/tenant"
)

// The batch commands against `hokusai dev`: generate leads, submit and wait
// with plain progress lines (stderr is not a terminal), download, status,
// cancel of a finished batch, and the tenant's webhook secret.
func TestBatchCommands(t *testing.T) {
	rdb := redistest.Client(t, srv)
	models, _ := filepath.Abs(filepath.Join("..", "..", demoModelDir))
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"REDIS_URL": srv.URL}
	getenv := func(k string) string { return env[k] }
	go func() {
		done <- run(ctx, []string{"hokusai", "dev", "--listen", "127.0.0.1:0", "--models", models}, getenv, nil, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
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

	dir := t.TempDir()
	leads, out := filepath.Join(dir, "leads.csv"), filepath.Join(dir, "scored.csv")
	cli := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"hokusai"}, args...), getenv, nil, &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	if _, _, err := cli("batch", "gen-leads", "5_000", "-o", leads); err != nil {
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
	id = strings.TrimSpace(id)
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
	jsonl := filepath.Join(dir, "scored.jsonl")
	if _, _, err := cli("batch", "results", id, "-o", jsonl); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(jsonl); bytes.Count(b, []byte("\n")) != 5000 || !bytes.HasPrefix(b, []byte(`{"row":0,"id":"L0"`)) {
		t.Errorf("JSONL results start %.60s", b)
	}
	secret, _, err := cli("keys", "secret", "--tenant", "acme")
	want, _ := tenant.WebhookSecret(ctx, rdb, "acme")
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
