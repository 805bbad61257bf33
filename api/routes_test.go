package api

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

var echoParam = regexp.MustCompile(`:([a-z_]+)`)

// The route table and /openapi.json describe the same surface, both ways,
// and every documented route is served (never the router's 404 or 405).
func TestRoutesMatchOpenAPI(t *testing.T) {
	// With an admin token, so /ops is on: without one it answers 404 by design.
	base := startServer(t, Config{AdminToken: "ops-secret"})
	key, _, err := apikey.Create(t.Context(), redistest.Client(t, srv), "acme", "")
	if err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	var documented, served []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range routes {
		served = append(served, r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(documented)
	sort.Strings(served)
	if diff := cmp.Diff(documented, served); diff != "" {
		t.Errorf("openapi.json (-) and the route table (+) differ:\n%s", diff)
	}

	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		req, _ := http.NewRequest(method, base+strings.ReplaceAll(path, "{id}", "21"), strings.NewReader(`{"inputs": {}}`))
		req.Header.Set("X-API-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		var body struct {
			Code string `json:"code"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.Code == CodeNotFound || body.Code == CodeMethodNotAllowed || resp.StatusCode >= 500 && resp.StatusCode != 503 {
			t.Errorf("%s answered %d %s: the documented route is not served", op, resp.StatusCode, body.Code)
		}
	}
}

// Every GET route of the table answers HEAD as it answers GET, status and
// headers, without a body; errors too.
func TestHeadAnswersLikeGet(t *testing.T) {
	base := startServer(t, Config{AdminToken: "ops-secret"})
	key, _, err := apikey.Create(t.Context(), redistest.Client(t, srv), "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, key string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("X-API-Key", key)
		req.SetBasicAuth("ops", "ops-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	paths := []string{"/ops/queues/api/queues"} // the dashboard's JSON API, behind its own router
	for _, r := range routes {
		if r.Method == http.MethodGet {
			paths = append(paths, strings.ReplaceAll(strings.ReplaceAll(r.Path, ":id", "21"), "*", "21"))
		}
	}
	for _, path := range paths {
		for _, k := range []struct{ name, key string }{{"the key", key}, {"a wrong key", "hk_wrong"}} {
			get, _ := do("GET", path, k.key)
			head, body := do("HEAD", path, k.key)
			if head.StatusCode != get.StatusCode || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") ||
				head.ContentLength != get.ContentLength || head.Header.Get("X-Request-ID") == "" || len(body) != 0 {
				t.Errorf("HEAD %s with %s: %d %q length %d, %d bytes of body; GET: %d %q length %d", path, k.name, head.StatusCode,
					head.Header.Get("Content-Type"), head.ContentLength, len(body), get.StatusCode, get.Header.Get("Content-Type"), get.ContentLength)
			}
		}
	}
}

func TestParsePrefer(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want preferences
	}{
		{[]string{"respond-async"}, preferences{async: true}},
		{[]string{"wait=5"}, preferences{wait: 5e9}},
		{[]string{"respond-async, wait=0.5"}, preferences{async: true, wait: 5e8}},
		{[]string{"handling=lenient", "Wait=2"}, preferences{wait: 2e9}},
		{[]string{"wait=-1", "wait=abc"}, preferences{}},
	} {
		if got := parsePrefer(tc.in); got != tc.want {
			t.Errorf("parsePrefer(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
