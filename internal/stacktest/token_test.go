package stacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/worker"
	"github.com/hokusai-ai/inference-queue/worker/hub"
	"github.com/hokusai-ai/inference-queue/worker/hub/hubtest"
	"github.com/hokusai-ai/inference-queue/worker/secret"
)

const goodToken = "hf_GOODtokenThatMustNeverLeak0123456789"

// hubWorker is a worker that loads hf:// models from a fake Hub, with its
// token read from a file (HF_TOKEN_FILE) as a deployed worker would.
type hubWorker struct {
	hub       *hubtest.Server
	tokenFile string
	health    string
	w         *worker.Worker
}

func demoRepo(t *testing.T, id string) hubtest.Repo {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"config.json", "model.json"} {
		b, err := os.ReadFile(filepath.Join(demoModel(t), name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return hubtest.Repo{ID: id, Private: true, Files: files, LFS: []string{"model.json"}}
}

func (s *stack) startHubWorker(t *testing.T, h *hubtest.Server, pool string) *hubWorker {
	t.Helper()
	hw := &hubWorker{hub: h, tokenFile: filepath.Join(t.TempDir(), "hf_token")}
	env := map[string]string{"HF_TOKEN_FILE": hw.tokenFile}
	tokens, err := secret.FromEnv(context.Background(), func(k string) string { return env[k] }, secret.Options{RefreshEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hc, err := hub.New(hub.Options{Endpoint: h.URL(), CacheDir: t.TempDir(), Token: secret.HubToken(tokens),
		MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sources := worker.NewSources(worker.SourcesConfig{Hub: hc, Token: tokens})
	hw.w, _ = s.startWorkerWith(srv.URL, worker.Config{Pool: pool, Recheck: sources.Recheck, RecheckInterval: 100 * time.Millisecond}, sources)
	hw.health = s.health[hw.w]
	return hw
}

func (hw *hubWorker) setToken(t *testing.T, tok string) {
	t.Helper()
	if err := os.WriteFile(hw.tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readyz returns the worker's /readyz status code and reasons.
func (hw *hubWorker) readyz(t *testing.T, s *stack) (int, []string) {
	t.Helper()
	resp, err := http.Get(hw.health + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, _ = s.seen.Write(b)
	var body struct {
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz body %s: %v", b, err)
	}
	return resp.StatusCode, body.Reasons
}

func (hw *hubWorker) waitReasons(t *testing.T, s *stack, code int, reasons ...string) {
	t.Helper()
	var got []string
	var gotCode int
	eventually(t, 20*time.Second, func() bool {
		gotCode, got = hw.readyz(t, s)
		return gotCode == code && slices.Equal(got, reasons)
	}, "/readyz never said %d %v; last %d %v\nlogs:\n%s", code, reasons, gotCode, got, s.logs)
}

// The first outage, replayed: a worker without the token for a private
// model says so and takes no work; the API stays up and refuses at once;
// the token arrives and the worker serves without a restart. A wrong token,
// and one revoked later, are named as such. The token appears nowhere.
func TestTokenOutage(t *testing.T) {
	h := hubtest.New(t)
	h.SetTokens(goodToken)
	h.AddRepo(demoRepo(t, "hokusai/sales-lead-scoring"))
	s := startStack(t, stackOptions{noWorker: true,
		specs: []registry.Spec{{ID: "21", Name: "Sales Lead Scoring Model", Source: "hf://hokusai/sales-lead-scoring"}}})
	hw := s.startHubWorker(t, h, "default")
	body := []byte(`{"inputs": ` + lead + `}`)

	hw.waitReasons(t, s, 503, "hf_token_missing")
	m := samples(scrape(t, hw.health))
	if m[series("hokusai_worker_not_ready_reason", "reason", "hf_token_missing")] != 1 || m[series("hokusai_worker_ready")] != 0 ||
		m[series("hokusai_worker_token_refresh_errors_total")] == 0 {
		t.Errorf("worker metrics do not show the missing token:\n%s", scrape(t, hw.health))
	}
	if r := s.do("GET", "/health", nil, nil); r.code != 200 {
		t.Errorf("API /health %d while the worker lacks its token", r.code)
	}
	r := s.do("POST", "/api/v1/models/21/predict", body, nil)
	if r.code != 503 || r.json(t)["code"] != "no_ready_worker" || r.header.Get("Retry-After") == "" {
		t.Fatalf("predict without a ready worker: %d %s", r.code, r.body)
	}

	hw.setToken(t, "hf_WRONGtokenAlsoSecret9876543210")
	hw.waitReasons(t, s, 503, "hf_token_invalid")

	hw.setToken(t, goodToken)
	hw.waitReasons(t, s, 200)
	s.waitReady("21")
	if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != 200 {
		t.Fatalf("predict once the token is there: %d %s", r.code, r.body)
	}
	var info struct {
		ModelRevision string `json:"model_revision"`
		Storage       string `json:"storage"`
	}
	if err := json.Unmarshal(s.do("GET", "/api/v1/models/21/info", nil, nil).body, &info); err != nil || info.Storage != "huggingface" || len(info.ModelRevision) != 40 {
		t.Errorf("info after a Hub load: %+v %v (want storage huggingface and the commit sha)", info, err)
	}

	h.SetTokens() // the Hub revokes it
	hw.waitReasons(t, s, 503, "hf_token_invalid")
	eventually(t, 10*time.Second, func() bool {
		return s.do("POST", "/api/v1/models/21/predict", body, map[string]string{"Prefer": "wait=2"}).code == 503
	}, "the API kept sending work to a worker whose token was revoked")

	assertNoSecret(t, s, goodToken, "hf_WRONGtokenAlsoSecret9876543210")
}

// assertNoSecret looks for the secrets in every log line, every response
// body, every key and value in Redis (all of them, by SCAN; a type it cannot
// read fails the test rather than go unchecked) and the /metrics of the API
// and of every worker.
func assertNoSecret(t *testing.T, s *stack, secrets ...string) {
	t.Helper()
	haystacks := map[string]string{"logs": s.logs.String(), "responses": s.seen.String(), "api metrics": scrape(t, s.url)}
	for w, health := range s.health {
		haystacks["metrics of worker "+w.Heartbeat().WorkerID] = scrape(t, health)
	}
	ctx := context.Background()
	var dump strings.Builder
	keys := 0
	iter := s.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		keys++
		dump.WriteString(k + "\n")
		switch typ := s.rdb.Type(ctx, k).Val(); typ {
		case "string":
			dump.WriteString(s.rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range s.rdb.HGetAll(ctx, k).Val() {
				dump.WriteString(f + "=" + v + "\n")
			}
		case "list":
			dump.WriteString(strings.Join(s.rdb.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			dump.WriteString(strings.Join(s.rdb.SMembers(ctx, k).Val(), "\n"))
		case "zset":
			dump.WriteString(strings.Join(s.rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		case "stream":
			for _, m := range s.rdb.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprintf(&dump, "%s %v\n", m.ID, m.Values)
			}
		case "none": // expired since SCAN listed it
		default:
			t.Errorf("Redis key %s is a %s, which this check does not read", k, typ)
		}
		dump.WriteString("\n")
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	haystacks["redis"] = dump.String()
	if len(haystacks["logs"]) == 0 || len(haystacks["responses"]) == 0 || keys == 0 {
		t.Fatal("nothing was captured; the leak check would prove nothing")
	}
	for where, text := range haystacks {
		for i, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("secret %d appears in %s", i, where)
			}
		}
	}
}

// A repo that ships a pickle is refused by name, with the converter named.
func TestPickleRefused(t *testing.T) {
	h := hubtest.New(t)
	h.SetTokens(goodToken)
	h.AddRepo(hubtest.Repo{ID: "hokusai/pickled", Files: map[string][]byte{"model.pkl": []byte("\x80\x04\x95 not really a pickle")}})
	s := startStack(t, stackOptions{noWorker: true,
		specs: []registry.Spec{{ID: "7", Source: "hf://hokusai/pickled", Pool: "legacy"}}})
	hw := s.startHubWorker(t, h, "legacy")
	hw.setToken(t, goodToken)
	hw.waitReasons(t, s, 503, "pickle_refused:7")
	if !strings.Contains(s.logs.String(), "tools/sklearn_convert.py") {
		t.Errorf("the refusal does not name the converter; logs:\n%s", s.logs)
	}
}
