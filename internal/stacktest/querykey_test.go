package stacktest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A key sent the old API's way, as ?api_key=, authenticates (after the
// header forms), marks the answer deprecated, and is found nowhere
// afterwards: not in a log line of either tier, a span attribute, either
// tier's /metrics, a response body, or any key or value in Redis. The URL
// is logged and traced with the key redacted.
func TestQueryKey(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	s := startStack(t, stackOptions{tracer: tp})
	const wrongKey = "hk_live_neverIssuedButSecretAll0123456789abcdefgh"
	key := s.key
	noHeader := map[string]string{"X-API-Key": ""}
	deprecated := func(t *testing.T, r reply, want bool) {
		t.Helper()
		dep, link := r.header.Get("Deprecation"), r.header.Get("Link")
		switch {
		case want && (dep != "@1759276800" || link != `</docs>; rel="deprecation"`):
			t.Errorf("Deprecation %q, Link %q; want @1759276800 (2025-10-01) and </docs>; rel=\"deprecation\"", dep, link)
		case !want && (dep != "" || link != ""):
			t.Errorf("Deprecation %q, Link %q on an answer not authenticated by ?api_key=", dep, link)
		}
	}

	r := s.do("POST", "/api/v1/models/21/predict?api_key="+key, []byte(`{"inputs": `+lead+`}`), noHeader)
	if r.code != http.StatusOK {
		t.Fatalf("predict with ?api_key=: %d %s", r.code, r.body)
	}
	deprecated(t, r, true)
	predictID := r.header.Get("X-Request-ID")

	for _, tc := range []struct {
		name, method, path, body string
		headers                  map[string]string
		code                     int
		errCode                  string
		deprecated               bool
	}{
		{"unknown model, name encoded", "POST", "/api/v1/models/99/predict?api%5Fkey=" + key, `{"inputs": {}}`, noHeader, 404, "model_not_found", true},
		{"invalid input, key twice", "POST", "/api/v1/models/21/predict?api_key=" + key + "&x=1&api_key=" + key,
			`{"inputs": {"company_size": "lots"}}`, noHeader, 422, "invalid_input", true},
		{"wrong key", "GET", "/api/v1/models?api_key=" + wrongKey, "", noHeader, 401, "unauthorized", false},
		{"unknown route, any case", "GET", "/api/v1/nothing?API_KEY=" + key, "", noHeader, 404, "not_found", false},
		{"header wins", "GET", "/api/v1/models?api_key=" + wrongKey, "", nil, 200, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.doText(tc.method, tc.path, tc.body, tc.headers)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.errCode != "" {
				if e := r.json(t); e["code"] != tc.errCode || e["request_id"] != r.header.Get("X-Request-ID") {
					t.Errorf("error body %s, want code %s and the request id", r.body, tc.errCode)
				}
			}
			deprecated(t, r, tc.deprecated)
		})
	}

	// An async job and a batch: their records, payloads and results go to
	// Redis, and the worker logs and traces them.
	r = s.do("POST", "/api/v1/models/21/jobs?api_key="+key, []byte(`{"inputs": `+lead+`}`), noHeader)
	if r.code != http.StatusAccepted {
		t.Fatalf("job with ?api_key=: %d %s", r.code, r.body)
	}
	job := r.json(t)["request_id"].(string)
	s.waitJob(t, job, "succeeded")
	deprecated(t, s.do("GET", "/api/v1/jobs/"+job+"?api_key="+key, nil, noHeader), true)
	batch := s.acceptedBatch(s.submitBatch(leadsCSV(t, 3, nil), "text/csv", "?explain=true&api_key="+key, noHeader))
	s.waitBatch(batch, 30*time.Second)
	if r := s.do("GET", "/api/v1/batches/"+batch+"/results?format=csv&api_key="+key, nil, noHeader); r.code != 200 {
		t.Fatalf("results with ?api_key=: %d %s", r.code, r.body)
	}

	lines := logLines(t, s.logs.String(), "request", predictID)
	if len(lines) != 1 || lines[0]["query"] != "api_key=REDACTED" {
		t.Errorf("the predict's request line has query %v, want api_key=REDACTED; lines %v", lines, lines)
	}
	var traced bool
	var spanText strings.Builder
	for _, sp := range spans.GetSpans() {
		fmt.Fprintf(&spanText, "%s %s %v\n", sp.Name, sp.Status.Description, sp.Resource.Attributes())
		var id, query string
		for _, kv := range sp.Attributes {
			fmt.Fprintf(&spanText, "%s=%s\n", kv.Key, kv.Value.String())
			switch kv.Key {
			case "hokusai.request_id":
				id = kv.Value.AsString()
			case "url.query":
				query = kv.Value.AsString()
			}
		}
		for _, ev := range sp.Events {
			fmt.Fprintf(&spanText, "%s %v\n", ev.Name, ev.Attributes)
		}
		if sp.SpanKind.String() == "server" && id == predictID {
			traced = query == "api_key=REDACTED"
		}
	}
	if !traced {
		t.Errorf("the predict's server span has no url.query of api_key=REDACTED; spans:\n%s", &spanText)
	}
	for i, secret := range []string{key, wrongKey} {
		if strings.Contains(spanText.String(), secret) {
			t.Errorf("secret %d appears in a span", i)
		}
	}
	assertNoSecret(t, s, key, wrongKey)
}
