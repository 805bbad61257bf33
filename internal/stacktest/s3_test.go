package stacktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
	"github.com/hokusai-ai/inference-queue/worker/objstore"
	"github.com/hokusai-ai/inference-queue/worker/objstore/objstoretest"
)

// The fake store's credentials: the tests check neither reaches a log.
const (
	s3AccessKey = objstoretest.AccessKey
	s3SecretKey = objstoretest.SecretKey
)

// fakeS3 serves an S3 store on loopback with the buckets given (see
// objstoretest).
func fakeS3(t testing.TB, buckets ...string) (*objstore.Store, string) {
	t.Helper()
	return objstoretest.New(t, buckets...)
}

func putObject(t testing.TB, st *objstore.Store, raw string, body []byte) {
	t.Helper()
	u, err := s3url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), u, body, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
}

func getObject(t testing.TB, st *objstore.Store, raw string) []byte {
	t.Helper()
	u, err := s3url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := st.Stat(t.Context(), u)
	if err != nil {
		t.Fatalf("stat %s: %v", raw, err)
	}
	r := st.Reader(t.Context(), u, obj, 1<<20)
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", raw, err)
	}
	return b
}

func s3Allow(t testing.TB, list string) s3url.AllowList {
	t.Helper()
	l, err := s3url.ParseAllow(list)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// s3Stack starts a stack whose API has cfg and the S3 allow-list allow,
// and one worker with the same list, reading and writing a fake store
// with the bucket leads.
func s3Stack(t *testing.T, cfg api.Config, allow string) (*stack, *objstore.Store) {
	t.Helper()
	st, _ := fakeS3(t, "leads")
	cfg.S3Allow = s3Allow(t, allow)
	s := startStack(t, stackOptions{noWorker: true, api: cfg})
	s.startWorker(srv.URL, worker.Config{S3: st, S3Allow: cfg.S3Allow})
	s.waitReady("21")
	return s, st
}

// workerProcess builds hokusai-worker and runs it as a process of its own
// on the package's Redis, reading and writing the fake store at endpoint
// within allow, with env added, until the test ends.
func (s *stack) workerProcess(endpoint, allow string, env ...string) *exec.Cmd {
	s.t.Helper()
	return s.startWorkerProcess(buildWorker(s.t), srv.URL, append([]string{
		"AWS_ENDPOINT_URL_S3=" + endpoint, "AWS_ACCESS_KEY_ID=" + s3AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3SecretKey,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "HOKUSAI_S3_ALLOW=" + allow}, env...)...)
}

// submitS3 submits an S3 batch as JSON.
func (s *stack) submitS3(input, output string, headers map[string]string) reply {
	s.t.Helper()
	body, _ := json.Marshal(map[string]string{"input_url": input, "output_url": output})
	return s.submitBatch(body, "application/json", "", headers)
}

// waitS3Batch waits until an S3 batch is done, its output written or its
// failure recorded, and returns its status.
func (s *stack) waitS3Batch(id string, within time.Duration) map[string]any {
	s.t.Helper()
	var b map[string]any
	eventually(s.t, within, func() bool {
		b = s.do("GET", "/api/v1/batches/"+id, nil, nil).json(s.t)
		return b["exported_at"] != nil || b["error"] != nil
	}, "S3 batch %s not done: %v; logs:\n%s", id, &b, s.logs)
	return b
}

// s3Manifest is the _SUCCESS object, as the tests read it.
type s3Manifest struct {
	BatchID, ModelID, ModelRevision, Status string `json:"-"`
	Rows                                    int    `json:"rows"`
	Failed                                  int    `json:"failed"`
	Input                                   struct {
		URL, SHA256 string
	} `json:"input"`
	Outputs []struct {
		URL, SHA256 string
		Bytes       int64
		Rows        int
	} `json:"outputs"`
}

// checkS3Output reads an S3 batch's results, errors file and manifest
// under prefix, and checks each against the input's n rows and its bad ones.
func checkS3Output(t testing.TB, st *objstore.Store, prefix string, input []byte, n int, bad map[int]bool) {
	t.Helper()
	results := getObject(t, st, prefix+"results.csv")
	checkCSVResults(t, results, n, bad)
	errs := getObject(t, st, prefix+"errors.csv")
	recs, err := csv.NewReader(bytes.NewReader(errs)).ReadAll()
	if err != nil {
		t.Fatalf("errors.csv is not CSV: %v", err)
	}
	if len(recs) != len(bad)+1 || strings.Join(recs[0], ",") != "row,id,error_code,error_detail" {
		t.Fatalf("errors.csv holds %d rows (want %d), header %v", len(recs)-1, len(bad), recs[0])
	}
	for _, r := range recs[1:] {
		row, _ := strconv.Atoi(r[0])
		if !bad[row] || r[2] == "" || r[3] == "" {
			t.Errorf("errors.csv row %v: not a bad row, or no reason", r)
		}
	}
	var m s3Manifest
	if err := json.Unmarshal(getObject(t, st, prefix+"_SUCCESS"), &m); err != nil {
		t.Fatalf("_SUCCESS is not JSON: %v", err)
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	if m.Rows != n || m.Failed != len(bad) || m.Input.SHA256 != sum(input) || len(m.Outputs) != 2 ||
		m.Outputs[0].SHA256 != sum(results) || m.Outputs[0].Bytes != int64(len(results)) || m.Outputs[0].Rows != n ||
		m.Outputs[1].SHA256 != sum(errs) || m.Outputs[1].Rows != len(bad) {
		t.Errorf("manifest %+v; want %d rows, %d failed, input %s, results %s (%d bytes), errors %s",
			m, n, len(bad), sum(input), sum(results), len(results), sum(errs))
	}
}

// An S3 batch reads a CSV, plain or gzip, from one prefix and writes its
// results in input order, the bad rows with their reasons and a manifest to
// another; the store's credentials reach no log, and its results are not
// served by the API. HOKUSAI_S3_ROWS sets the rows (default 2,500; the
// closing notes quote a run at 1,000,000).
func TestS3Batch(t *testing.T) {
	n := rowsFromEnv("HOKUSAI_S3_ROWS", 2500)
	// Chunks of 2,000 rows render to more than the exporter's 64 KiB
	// writer holds, as the default's do: such a chunk once left the
	// manifest's checksum and bytes short of the file's.
	s, st := s3Stack(t, api.Config{Batch: api.BatchConfig{ChunkRows: 2000}}, "s3://leads/exports,s3://leads/scores")
	bad := map[int]bool{3: true, n / 2: true, n - 1: true}
	plain := leadsCSV(t, n, bad)
	var id string
	for _, f := range []struct{ name, key string }{{"csv", "leads.csv"}, {"gzip", "leads.csv.gz"}} {
		input := plain
		if f.name == "gzip" {
			input = gzipped(t, plain)
		}
		in, out := "s3://leads/exports/2026-12-01/"+f.key, "s3://leads/scores/2026-12-01/"+f.name
		putObject(t, st, in, input)
		start := time.Now()
		id = s.acceptedBatch(s.submitS3(in, out, nil))
		b := s.waitS3Batch(id, 10*time.Minute)
		if b["status"] != jobs.BatchPartiallyFailed || b["rows_total"] != float64(n) || b["rows_failed"] != float64(len(bad)) ||
			b["output_url"] != out+"/" {
			t.Fatalf("%s: status %v", f.name, b)
		}
		t.Logf("%s: %d rows S3 to S3 in %.1f s", f.name, n, time.Since(start).Seconds())
		checkS3Output(t, st, out+"/", input, n, bad)
	}
	const gz = "s3://leads/exports/2026-12-01/leads.csv.gz"
	again := s.submitS3(gz, "s3://leads/scores/2026-12-01", map[string]string{"Idempotency-Key": "nightly"})
	if first := s.acceptedBatch(again); first == id {
		t.Fatal("a new key answered with the old batch")
	} else if rerun := s.acceptedBatch(s.submitS3(gz, "s3://leads/scores/2026-12-01",
		map[string]string{"Idempotency-Key": "nightly"})); rerun != first {
		t.Errorf("the same Idempotency-Key made batch %s, then %s", first, rerun)
	}
	if r := s.do("GET", "/api/v1/batches/"+id+"/results", nil, nil); r.code != http.StatusConflict ||
		!strings.Contains(string(r.body), "s3://leads/scores/2026-12-01/gzip/") {
		t.Errorf("results of an S3 batch through the API: %d %s", r.code, r.body)
	}
	for _, secret := range []string{s3SecretKey, s3AccessKey} {
		if strings.Contains(s.logs.String(), secret) || strings.Contains(s.seen.String(), secret) {
			t.Errorf("a credential reached the logs or a response")
		}
	}
}

// Locations off the allow-lists are refused at submission with a JSON 403
// naming the location; a tenant's own entry lets it through.
func TestS3BatchForbidden(t *testing.T) {
	st, _ := fakeS3(t, "leads", "other")
	allow := s3Allow(t, "s3://leads/exports")
	s := startStack(t, stackOptions{noWorker: true, api: api.Config{S3Allow: allow}})
	s.startWorker(srv.URL, worker.Config{S3: st, S3Allow: allow})
	s.waitReady("21")
	for name, c := range map[string][2]string{
		"output elsewhere":        {"s3://leads/exports/a.csv", "s3://other/scores/"},
		"input beside the prefix": {"s3://leads/exports-old/a.csv", "s3://leads/exports/out/"},
		"input in another bucket": {"s3://other/exports/a.csv", "s3://leads/exports/out/"},
		"dot segments out of it":  {"s3://leads/exports/../secret.csv", "s3://leads/exports/out/"},
	} {
		r := s.submitS3(c[0], c[1], nil)
		m := r.json(t)
		want := http.StatusForbidden
		if strings.Contains(c[0], "..") {
			want = http.StatusUnprocessableEntity
		}
		if r.code != want || m["request_id"] == nil {
			t.Errorf("%s: %d %s", name, r.code, r.body)
		}
	}
	if err := s.rdb.SAdd(t.Context(), jobs.S3AllowKey("acme"), "s3://other/scores").Err(); err != nil {
		t.Fatal(err)
	}
	putObject(t, st, "s3://leads/exports/a.csv", leadsCSV(t, 10, nil))
	id := s.acceptedBatch(s.submitS3("s3://leads/exports/a.csv", "s3://other/scores/", nil))
	if b := s.waitS3Batch(id, 30*time.Second); b["status"] != jobs.BatchSucceeded {
		t.Fatalf("with the tenant's own entry: %v", b)
	}
	if got := getObject(t, st, "s3://other/scores/results.csv"); bytes.Count(got, []byte("\n")) != 11 {
		t.Errorf("results:\n%s", got)
	}
}

// A worker that finds a location no longer allowed (its list is newer
// than the API's) fails the batch, saying why, and writes nothing.
func TestS3BatchWorkerRechecks(t *testing.T) {
	st, _ := fakeS3(t, "leads")
	s := startStack(t, stackOptions{noWorker: true, api: api.Config{S3Allow: s3Allow(t, "s3://leads")}})
	s.startWorker(srv.URL, worker.Config{S3: st, S3Allow: s3Allow(t, "s3://leads/exports")})
	s.waitReady("21")
	putObject(t, st, "s3://leads/exports/a.jsonl", []byte(`{"engagement_score": 5}`+"\n"))
	id := s.acceptedBatch(s.submitS3("s3://leads/exports/a.jsonl", "s3://leads/scores/", nil))
	b := s.waitS3Batch(id, 30*time.Second)
	e, _ := b["error"].(map[string]any)
	if b["status"] != jobs.BatchFailed || e["code"] != jobs.BatchErrForbidden {
		t.Fatalf("status %v", b)
	}
	u, _ := s3url.Parse("s3://leads/scores/results.jsonl")
	if _, err := st.Stat(context.Background(), u); err == nil {
		t.Errorf("a refused batch wrote its results")
	}
}

// Bad requests are JSON errors with stable codes: a missing output, an
// unknown format, rows and an input both, an input that is not s3://.
func TestS3BatchBadRequests(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{S3Allow: s3Allow(t, "s3://leads")}})
	for name, body := range map[string]string{
		"no output":        `{"input_url": "s3://leads/a.csv"}`,
		"unknown format":   `{"input_url": "s3://leads/a.parquet", "output_url": "s3://leads/out/"}`,
		"rows and input":   `{"input_url": "s3://leads/a.csv", "output_url": "s3://leads/out/", "inputs": [{}]}`,
		"not s3":           `{"input_url": "https://leads/a.csv", "output_url": "s3://leads/out/"}`,
		"bucket too short": `{"input_url": "s3://le/a.csv", "output_url": "s3://leads/out/"}`,
		"not a string":     `{"input_url": 5, "output_url": "s3://leads/out/"}`,
	} {
		r := s.submitBatch([]byte(body), "application/json", "", nil)
		m := r.json(t)
		if r.code/100 != 4 || m["code"] == nil || m["request_id"] == nil {
			t.Errorf("%s: %d %s", name, r.code, r.body)
		}
	}
}

// A worker SIGKILLed in the middle of an S3 batch, its output partly
// uploaded, loses nothing and duplicates nothing: once the killed
// worker's heartbeat has been gone HOKUSAI_RECLAIM_AFTER another worker
// hands its task back and resumes from the chunks stored and the parts
// uploaded, and completes the upload once. The killed worker is the real
// binary, given the store through the SDK's own environment
// (AWS_ENDPOINT_URL_S3 and the key pair).
func TestS3BatchWorkerKilled(t *testing.T) {
	st, endpoint := fakeS3(t, "leads")
	allow := "s3://leads/exports,s3://leads/scores"
	s := startStack(t, stackOptions{noWorker: true, api: api.Config{S3Allow: s3Allow(t, allow),
		Batch: api.BatchConfig{ChunkRows: 50}}})
	victim := s.workerProcess(endpoint, allow, "HOKUSAI_LOG_LEVEL=debug", "HOKUSAI_S3_PART_BYTES=65536")
	s.waitReady("21")
	const n = 2000
	bad := map[int]bool{7: true, 1999: true}
	input := leadsCSV(t, n, bad)
	putObject(t, st, "s3://leads/exports/leads.csv", input)
	// explain=true (TreeSHAP, about 1 ms a row) keeps the batch running for
	// seconds, long enough to kill the worker after its first parts.
	id := s.acceptedBatch(s.submitBatch([]byte(`{"input_url": "s3://leads/exports/leads.csv", "output_url": "s3://leads/scores/"}`),
		"application/json", "?explain=true", nil))
	var rec jobs.BatchRecord
	eventually(t, 60*time.Second, func() bool {
		rec, _ = jobs.DecodeBatchRecord(s.rdb.HGetAll(t.Context(), jobs.BatchKey(id)).Val())
		return strings.Contains(rec.S3Export, `"n":2`)
	}, "the victim uploaded no second part: %+v\n%s", &rec, s.logs)
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = victim.Wait()
	if b := s.do("GET", "/api/v1/batches/"+id, nil, nil).json(t); b["exported_at"] != nil {
		t.Fatalf("the batch was written before the kill; make it longer: %v", b)
	}
	// A worker started now hands the victim's task back once its own
	// heartbeats have reached Redis for HOKUSAI_RECLAIM_AFTER.
	s.startWorker(srv.URL, worker.Config{S3: st, S3Allow: s3Allow(t, allow), S3PartBytes: 64 << 10})
	b := s.waitS3Batch(id, 120*time.Second) // a liveness bound; the figure is logged
	t.Logf("the S3 batch finished %.1f s after its worker was killed", time.Since(killed).Seconds())
	if b["status"] != jobs.BatchPartiallyFailed || b["rows_done"] != float64(n) {
		t.Fatalf("after the kill: %v", b)
	}
	checkS3Output(t, st, "s3://leads/scores/", input, n, bad)
	if strings.Contains(s.logs.String(), s3SecretKey) {
		t.Errorf("the secret key reached the logs")
	}
}

// An S3 batch calls its callback_url as an upload's batch does: once
// its output is written, and once it fails as a whole, each delivery
// signed and recorded in the batch's status.
func TestS3BatchWebhook(t *testing.T) {
	s, st := s3Stack(t, api.Config{}, "s3://leads/exports,s3://leads/scores")
	secret, err := tenant.WebhookSecret(t.Context(), s.rdb, "acme")
	if err != nil {
		t.Fatal(err)
	}
	hook := newHeldHook(t, secret)
	hook.letGo() // answer 200 at once
	putObject(t, st, "s3://leads/exports/a.csv", leadsCSV(t, 10, nil))
	submit := func(input string) string {
		body, _ := json.Marshal(map[string]string{"input_url": input, "output_url": "s3://leads/scores/", "callback_url": hook.URL})
		return s.acceptedBatch(s.submitBatch(body, "application/json", "", nil))
	}
	for input, want := range map[string]string{"s3://leads/exports/a.csv": jobs.BatchSucceeded, "s3://leads/exports/missing.csv": jobs.BatchFailed} {
		id := submit(input)
		attempts := s.waitDelivered(id)
		if b := s.batchStatus(id); b.Status != want || len(attempts) != 1 || attempts[0].Status != http.StatusOK {
			t.Errorf("%s: status %s, attempts %+v; want %s, one delivery", input, b.Status, attempts, want)
		}
	}
	if c := hook.counts(); c[1] != 2 || hook.unsigned != 0 {
		t.Errorf("receiver counts %v, %d unsigned; want 2 signed deliveries", c, hook.unsigned)
	}
}

// An S3 batch's rows count against its key's batch row quota as the
// worker reads them, chunk by chunk: an input that passes the quota fails
// the batch with rate_limited, naming the limit, and the rows stored
// before stay charged.
func TestS3BatchRowQuota(t *testing.T) {
	s, st := s3Stack(t, api.Config{Batch: api.BatchConfig{ChunkRows: 100}}, "s3://leads/exports,s3://leads/scores")
	ctx := t.Context()
	key, rec, err := apikey.Create(ctx, s.rdb, "acme", "unlimited")
	if err != nil {
		t.Fatal(err)
	}
	limit := "250/h"
	if _, err := apikey.SetLimits(ctx, s.rdb, rec.ID, apikey.Change{BatchRows: &limit}); err != nil {
		t.Fatal(err)
	}
	putObject(t, st, "s3://leads/exports/big.csv", leadsCSV(t, 1000, nil))
	id := s.acceptedBatch(s.submitS3("s3://leads/exports/big.csv", "s3://leads/scores/", map[string]string{"X-API-Key": key}))
	b := s.waitS3Batch(id, 30*time.Second)
	e, _ := b["error"].(map[string]any)
	if b["status"] != jobs.BatchFailed || e["code"] != jobs.BatchErrRateLimited || !strings.Contains(e["detail"].(string), "250/h") {
		t.Fatalf("status %v", b)
	}
	// Two chunks of 100 passed, the third did not: 200 of the 250 are used.
	bucket := "hokusai:ratelimit:{acme}:batch_rows:key:" + rec.ID
	if n, err := s.rdb.Exists(ctx, bucket).Result(); err != nil || n != 1 {
		t.Fatalf("no rows charged to %s: %v", bucket, err)
	}
	putObject(t, st, "s3://leads/exports/small.csv", leadsCSV(t, 100, nil))
	id = s.acceptedBatch(s.submitS3("s3://leads/exports/small.csv", "s3://leads/scores/small/", map[string]string{"X-API-Key": key}))
	if b := s.waitS3Batch(id, 30*time.Second); b["error"] == nil {
		t.Fatalf("100 more rows passed a quota with 50 left: %v", b)
	}
}

// A gzip input that expands past HOKUSAI_GZIP_MAX_RATIO (200) after its
// first MiB fails its batch with payload_too_large, as a gzip upload is
// refused: a small object cannot make a worker read gigabytes.
func TestS3BatchGzipBomb(t *testing.T) {
	s, st := s3Stack(t, api.Config{}, "s3://leads/exports,s3://leads/scores")
	one := leadsCSV(t, 1, nil)
	header, row, _ := bytes.Cut(one, []byte("\n"))
	// 4 MiB of one row again and again: gzip makes it about 1,000 times smaller.
	input := append(append(header, '\n'), bytes.Repeat(row, 4<<20/len(row))...)
	putObject(t, st, "s3://leads/exports/bomb.csv.gz", gzipped(t, input))
	id := s.acceptedBatch(s.submitS3("s3://leads/exports/bomb.csv.gz", "s3://leads/scores/bomb/", nil))
	b := s.waitS3Batch(id, 60*time.Second)
	e, _ := b["error"].(map[string]any)
	if b["status"] != jobs.BatchFailed || e["code"] != jobs.BatchErrTooLarge || !strings.Contains(e["detail"].(string), "200-fold") {
		t.Fatalf("status %v", b)
	}
}
