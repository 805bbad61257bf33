package stacktest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/registry"
)

func TestSyncPredict(t *testing.T) {
	s := startStack(t, stackOptions{})
	r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), nil)
	if r.code != 200 {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	var body struct {
		ModelID     string `json:"model_id"`
		Predictions struct {
			LeadScore             *int     `json:"lead_score"`
			ConversionProbability *float64 `json:"conversion_probability"`
			Recommendation        string   `json:"recommendation"`
			Factors               []any    `json:"factors"`
		} `json:"predictions"`
		Metadata struct {
			APIVersion      string `json:"api_version"`
			InferenceMethod string `json:"inference_method"`
			RequestID       string `json:"request_id"`
			ModelRevision   string `json:"model_revision"`
			Warnings        []any  `json:"warnings"`
		} `json:"metadata"`
		Timestamp string `json:"timestamp"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	p := body.Predictions
	if body.ModelID != "21" || p.LeadScore == nil || p.ConversionProbability == nil {
		t.Fatalf("missing fields: %s", r.body)
	}
	if *p.LeadScore != int(*p.ConversionProbability*100) || *p.LeadScore < 0 || *p.LeadScore > 100 {
		t.Errorf("lead_score %d does not match probability %f", *p.LeadScore, *p.ConversionProbability)
	}
	want := "Cold"
	if *p.LeadScore >= 70 {
		want = "Hot"
	} else if *p.LeadScore >= 40 {
		want = "Warm"
	}
	if p.Recommendation != want || len(p.Factors) == 0 {
		t.Errorf("recommendation %q (want %q), factors %v", p.Recommendation, want, p.Factors)
	}
	m := body.Metadata
	if m.RequestID != r.header.Get("X-Request-ID") || m.APIVersion != "1.0" || m.InferenceMethod != "local" ||
		m.ModelRevision == "" || m.Warnings == nil || len(m.Warnings) != 0 {
		t.Errorf("metadata %+v, X-Request-ID %s", m, r.header.Get("X-Request-ID"))
	}
	if _, err := time.Parse(oldTimestamp, body.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", body.Timestamp, err)
	}

	// The same input always scores the same; a list scores row by row.
	r2 := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": [`+lead+`, {"engagement_score": 5}, `+lead+`]}`), map[string]string{"Authorization": "Bearer " + s.key, "X-API-Key": ""})
	if r2.code != 200 {
		t.Fatalf("list: status %d: %s", r2.code, r2.body)
	}
	var list struct {
		Predictions []struct {
			LeadScore int `json:"lead_score"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(r2.body, &list); err != nil || len(list.Predictions) != 3 {
		t.Fatalf("list predictions: %v %s", err, r2.body)
	}
	if list.Predictions[0].LeadScore != *p.LeadScore || list.Predictions[2].LeadScore != *p.LeadScore {
		t.Errorf("same lead scored %d, %d and %d", *p.LeadScore, list.Predictions[0].LeadScore, list.Predictions[2].LeadScore)
	}
	if list.Predictions[1].LeadScore >= list.Predictions[0].LeadScore {
		t.Errorf("a cold lead (%d) scored no lower than a hot one (%d)", list.Predictions[1].LeadScore, list.Predictions[0].LeadScore)
	}
}

func TestAsyncJobs(t *testing.T) {
	s := startStack(t, stackOptions{})
	for name, submit := range map[string]func() reply{
		"prefer": func() reply {
			return s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), map[string]string{"Prefer": "respond-async", "Authorization": "ApiKey " + s.key, "X-API-Key": ""})
		},
		"jobs route": func() reply { return s.do("POST", "/api/v1/models/21/jobs", []byte(`{"inputs": `+lead+`}`), nil) },
	} {
		t.Run(name, func(t *testing.T) {
			r := submit()
			if r.code != 202 {
				t.Fatalf("status %d: %s", r.code, r.body)
			}
			acc := r.json(t)
			id, _ := acc["request_id"].(string)
			if id == "" || r.header.Get("Location") != "/api/v1/jobs/"+id || acc["status_url"] != "/api/v1/jobs/"+id {
				t.Fatalf("accepted body %s, Location %q", r.body, r.header.Get("Location"))
			}
			job := s.waitJob(t, id, "succeeded")
			result, _ := job["result"].(map[string]any)
			preds, _ := result["predictions"].(map[string]any)
			if preds["lead_score"] == nil || job["created_at"] == nil || job["completed_at"] == nil {
				t.Errorf("job body lacks result or timestamps: %v", job)
			}
		})
	}
}

// waitJob polls a job until it reaches status and returns its body.
func (s *stack) waitJob(t testing.TB, id, status string) map[string]any {
	t.Helper()
	var last map[string]any
	eventually(t, 15*time.Second, func() bool {
		r := s.do("GET", "/api/v1/jobs/"+id, nil, nil)
		if r.code != 200 {
			t.Fatalf("job %s: status %d: %s", id, r.code, r.body)
		}
		last = r.json(t)
		return last["status"] == status
	}, "job %s never reached %s; last %v", id, status, last)
	return last
}

func TestTenantIsolationAndCancel(t *testing.T) {
	s := startStack(t, stackOptions{})
	other, _, err := apikey.Create(t.Context(), s.rdb, "globex", "")
	if err != nil {
		t.Fatal(err)
	}
	// Hold the async lane so the job stays queued while we look at it.
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	if err := insp.PauseQueue("default:async"); err != nil {
		t.Fatal(err)
	}
	r := s.do("POST", "/api/v1/models/21/jobs", []byte(`{"inputs": `+lead+`}`), nil)
	if r.code != 202 {
		t.Fatalf("submit: %d %s", r.code, r.body)
	}
	id := r.json(t)["request_id"].(string)
	if got := s.waitJob(t, id, "queued")["status"]; got != "queued" {
		t.Fatalf("status %v", got)
	}
	for _, method := range []string{"GET", "DELETE"} {
		r := s.do(method, "/api/v1/jobs/"+id, nil, map[string]string{"X-API-Key": other})
		if r.code != 404 || r.json(t)["code"] != "job_not_found" {
			t.Errorf("%s by another tenant: %d %s, want 404 job_not_found", method, r.code, r.body)
		}
	}
	r = s.do("DELETE", "/api/v1/jobs/"+id, nil, nil)
	if r.code != 200 || r.json(t)["status"] != "canceled" {
		t.Fatalf("cancel: %d %s", r.code, r.body)
	}
	if err := insp.UnpauseQueue("default:async"); err != nil {
		t.Fatal(err)
	}
	if got := s.do("GET", "/api/v1/jobs/"+id, nil, nil).json(t); got["status"] != "canceled" || got["canceled_at"] == nil {
		t.Errorf("after cancel: %v", got)
	}
	// A finished job cannot be canceled.
	r = s.do("POST", "/api/v1/models/21/jobs", []byte(`{"inputs": `+lead+`}`), nil)
	done := r.json(t)["request_id"].(string)
	s.waitJob(t, done, "succeeded")
	if r := s.do("DELETE", "/api/v1/jobs/"+done, nil, nil); r.code != 409 || r.json(t)["code"] != "conflict" {
		t.Errorf("cancel of a finished job: %d %s", r.code, r.body)
	}
}

func TestErrors(t *testing.T) {
	s := startStack(t, stackOptions{
		api: api.Config{MaxBodyBytes: 4096},
		specs: []registry.Spec{
			{ID: "21", Name: "Sales Lead Scoring Model", Source: "file://" + demoModel(t)},
			{ID: "22", Source: "file://" + demoModel(t), Pool: "nobody"},
		},
	})
	// Model 22 has a schema (published by no worker yet) only once some worker
	// of its pool loads it; until then it is unservable.
	big := `{"inputs": {"title": "` + strings.Repeat("x", 5000) + `"}}`
	for _, tc := range []struct {
		name, method, path, body string
		headers                  map[string]string
		code                     int
		errCode                  string
	}{
		{"malformed JSON", "POST", "/api/v1/models/21/predict", `{"inputs": `, nil, 400, "bad_request"},
		{"no inputs", "POST", "/api/v1/models/21/predict", `{"options": {}}`, nil, 422, "invalid_input"},
		{"unknown field, strict", "POST", "/api/v1/models/21/predict", `{"inputs": {"colour": "red"}, "options": {"strict": true}}`, nil, 422, "invalid_input"},
		{"wrong type", "POST", "/api/v1/models/21/predict", `{"inputs": {"company_size": "huge"}}`, nil, 422, "invalid_input"},
		{"not a whole number", "POST", "/api/v1/models/21/predict", `{"inputs": {"company_size": 10.5}}`, nil, 422, "invalid_input"},
		{"bad as_of", "POST", "/api/v1/models/21/predict", `{"inputs": {}, "options": {"as_of": "soon"}}`, nil, 422, "invalid_input"},
		{"too many rows", "POST", "/api/v1/models/21/predict", `{"inputs": [` + strings.Repeat(`{},`, 100) + `{}]}`, nil, 422, "invalid_input"},
		{"too large", "POST", "/api/v1/models/21/predict", big, nil, 413, "payload_too_large"},
		{"media type", "POST", "/api/v1/models/21/predict", `{"inputs": {}}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"unknown model", "POST", "/api/v1/models/99/predict", `{"inputs": {}}`, nil, 404, "model_not_found"},
		{"unknown model info", "GET", "/api/v1/models/99/info", "", nil, 404, "model_not_found"},
		{"unknown job", "GET", "/api/v1/jobs/nope", "", nil, 404, "job_not_found"},
		{"unknown route", "GET", "/api/v1/nothing-here", "", nil, 404, "not_found"},
		{"wrong method", "PUT", "/api/v1/models/21/predict", "", nil, 405, "method_not_allowed"},
		{"no key", "POST", "/api/v1/models/21/predict", `{"inputs": {}}`, map[string]string{"X-API-Key": ""}, 401, "unauthorized"},
		{"bad key", "GET", "/api/v1/models", "", map[string]string{"X-API-Key": "hk_wrong"}, 401, "unauthorized"},
		{"no ready worker", "POST", "/api/v1/models/22/predict", `{"inputs": {}}`, nil, 503, "no_ready_worker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.doText(tc.method, tc.path, tc.body, tc.headers)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			e := r.json(t)
			if e["code"] != tc.errCode || e["detail"] == "" || e["request_id"] != r.header.Get("X-Request-ID") || e["request_id"] == "" {
				t.Errorf("error body %s, want code %s with detail and request_id = X-Request-ID", r.body, tc.errCode)
			}
			if tc.code == 422 && tc.name != "no inputs" && tc.name != "too many rows" {
				errs, _ := e["errors"].([]any)
				if len(errs) == 0 {
					t.Errorf("422 without per-field errors: %s", r.body)
				}
			}
			if tc.code == 503 && r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}
