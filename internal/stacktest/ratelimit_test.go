package stacktest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
)

// The old API's default: 1,000 requests an hour per key. The 1,001st is
// 429 rate_limited with Retry-After, and every answer on the way says how
// many are left.
func TestRateLimitDefault(t *testing.T) {
	s := startStack(t, stackOptions{})
	key, _, err := apikey.Create(t.Context(), s.rdb, "initech", "")
	if err != nil {
		t.Fatal(err)
	}
	s.key = key
	// The bucket refills one request every 3.6 s: a slow machine may see
	// that many more admitted than 1,000 while it sends them.
	start := time.Now()
	refilled := func() int { return int(time.Since(start)/(3600*time.Millisecond)) + 1 }
	admitted := 0
	var r reply
	for ; admitted <= 1000+refilled(); admitted++ {
		r = s.do("GET", "/api/v1/models/21/info", nil, nil)
		if r.code == http.StatusTooManyRequests {
			break
		}
		var left int
		if _, err := fmt.Sscanf(r.header.Get("RateLimit"), `"key";r=%d;t=`, &left); err != nil || r.code != http.StatusOK ||
			left < 999-admitted || left > 999-admitted+refilled() {
			t.Fatalf("request %d: %d, RateLimit %q, want r=%d (or up to %d more refilled)", admitted+1, r.code,
				r.header.Get("RateLimit"), 999-admitted, refilled())
		}
	}
	if admitted < 1000 || admitted > 1000+refilled() || r.code != http.StatusTooManyRequests || r.json(t)["code"] != "rate_limited" {
		t.Fatalf("admitted %d in %s, then %d %s", admitted, time.Since(start), r.code, r.body)
	}
	// One more is due 3.6 s after the first request, however long the
	// thousand took: Retry-After is that wait rounded up, 1 to 4 s.
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 4 {
		t.Errorf("Retry-After %q, want 1 to 4 seconds", r.header.Get("Retry-After"))
	}
	if got := r.header.Get("RateLimit-Policy"); got != `"key";q=1000;w=3600` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := r.header.Get("RateLimit"); !strings.HasPrefix(got, `"key";r=0;t=`) {
		t.Errorf("RateLimit %q", got)
	}
	// Refused from memory the second time, with the same answer.
	if r := s.do("GET", "/api/v1/models/21/info", nil, nil); r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("the 1,002nd: %d, Retry-After %q", r.code, r.header.Get("Retry-After"))
	}
	// Another tenant's key has its own quota.
	other, _, err := apikey.Create(t.Context(), s.rdb, "globex", "")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("GET", "/api/v1/models/21/info", nil, map[string]string{"X-API-Key": other}); r.code != http.StatusOK {
		t.Errorf("another tenant: %d %s", r.code, r.body)
	}
}

// Two API processes on one Redis share one limit exactly: of 120 requests
// from 8 clients spread over both, exactly 50 get through.
func TestRateLimitSharedAcrossProcesses(t *testing.T) {
	cfg := api.Config{RateLimit: "50/h"}
	s := startStack(t, stackOptions{api: cfg})
	second := s.anotherAPI(cfg)
	key, _, err := apikey.Create(t.Context(), s.rdb, "initech", "")
	if err != nil {
		t.Fatal(err)
	}
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 15 {
				base := s.url
				if (c+i)%2 == 1 {
					base = second
				}
				code := s.status("GET", base+"/api/v1/models", key)
				switch code {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 50 || limited.Load() != 70 || other.Load() != 0 {
		t.Fatalf("admitted %d, limited %d, other %d; want 50, 70, 0", ok.Load(), limited.Load(), other.Load())
	}
}

// A key's own limit overrides the default, until it is cleared; a list
// costs one per row; a tenant's own limit binds all its keys together.
func TestRateLimitOverridesAndRows(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{RateLimit: "10/h"}})
	ctx := t.Context()
	own, rec, err := apikey.Create(ctx, s.rdb, "acme", "3/h")
	if err != nil {
		t.Fatal(err)
	}
	as := func(key string) map[string]string { return map[string]string{"X-API-Key": key} }
	for i := range 3 {
		if r := s.do("GET", "/api/v1/models", nil, as(own)); r.code != http.StatusOK {
			t.Fatalf("own key, request %d: %d", i+1, r.code)
		}
	}
	r := s.do("GET", "/api/v1/models", nil, as(own))
	if r.code != http.StatusTooManyRequests || r.header.Get("RateLimit-Policy") != `"key";q=3;w=3600` {
		t.Fatalf("own key's 4th: %d, policy %q", r.code, r.header.Get("RateLimit-Policy"))
	}
	if _, err := apikey.SetLimits(ctx, s.rdb, rec.ID, apikey.Change{Requests: ptr("unlimited")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { // the key cache forgets within a second
		r := s.do("GET", "/api/v1/models", nil, as(own))
		return r.code == http.StatusOK && r.header.Get("RateLimit") == ""
	}, "the key's limit never lifted")

	// A key under the default: a list of 4 rows costs 4 of its 10.
	def, _, err := apikey.Create(ctx, s.rdb, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	s.key = def
	list := []byte(`{"inputs": [` + strings.Repeat(lead+",", 3) + lead + `]}`)
	r = s.do("POST", "/api/v1/models/21/predict", list, nil)
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("RateLimit"), `"key";r=6;`) {
		t.Fatalf("a 4-row list: %d, RateLimit %q, want r=6", r.code, r.header.Get("RateLimit"))
	}
	seven := []byte(`{"inputs": [` + strings.Repeat(lead+",", 6) + lead + `]}`)
	if r := s.do("POST", "/api/v1/models/21/predict", seven, nil); r.code != http.StatusTooManyRequests {
		t.Fatalf("a 7-row list with 6 left: %d %s", r.code, r.body)
	}
	// The refused list charged nothing but its first row: 5 remain.
	if r := s.do("GET", "/api/v1/models", nil, nil); !strings.HasPrefix(r.header.Get("RateLimit"), `"key";r=4;`) {
		t.Fatalf("after the refused list: RateLimit %q, want r=4", r.header.Get("RateLimit"))
	}

	// acme's own tenant limit binds its keys together.
	if err := apikey.SetTenantLimits(ctx, s.rdb, "acme", apikey.Change{Requests: ptr("2/h")}); err != nil {
		t.Fatal(err)
	}
	second, _, err := apikey.Create(ctx, s.rdb, "acme", "unlimited") // only the tenant's limit binds
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		r := s.do("GET", "/api/v1/models", nil, as(second))
		return strings.Contains(r.header.Get("RateLimit-Policy"), `"tenant";q=2;w=3600`)
	}, "the tenant limit never applied")
	if r := s.do("GET", "/api/v1/models", nil, as(second)); r.code != http.StatusOK {
		t.Fatalf("acme's second under 2/h: %d %q %q", r.code, r.header.Get("RateLimit"), r.header.Get("RateLimit-Policy"))
	}
	r = s.do("GET", "/api/v1/models", nil, as(own))
	if r.code != http.StatusTooManyRequests || !strings.HasPrefix(r.header.Get("RateLimit"), `"tenant";r=0;`) {
		t.Fatalf("acme's third under 2/h: %d, RateLimit %q", r.code, r.header.Get("RateLimit"))
	}
}

// anotherAPI serves a second API process on the stack's Redis and returns
// its URL.
func (s *stack) anotherAPI(cfg api.Config) string {
	s.t.Helper()
	a, err := api.NewServer(cfg, s.rdb, slog.New(slog.NewJSONHandler(s.logs, nil)).With("tier", "api2"))
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx, ln) }()
	s.t.Cleanup(func() { stop(); <-done })
	url := "http://" + ln.Addr().String()
	eventually(s.t, 5*time.Second, func() bool { return s.status("GET", url+"/ready", "") == http.StatusOK }, "the second API never got ready")
	return url
}

// status sends a bodiless request with key and returns the status code.
func (s *stack) status(method, url, key string) int {
	req, _ := http.NewRequest(method, url, nil)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// With Redis down a request's limits cannot be counted: HOKUSAI_RATE_LIMIT_FAIL
// open lets it through, closed answers 503; both count it in
// hokusai_api_rate_limit_errors_total.
func TestRateLimitWhenRedisIsDown(t *testing.T) {
	for mode, want := range map[string]int{"open": http.StatusOK, "closed": http.StatusServiceUnavailable} {
		t.Run(mode, func(t *testing.T) {
			own := ownRedis(t)
			s := startStack(t, stackOptions{redisURL: own.URL, noWorker: true,
				api: api.Config{RateLimit: "100/h", RateLimitFail: mode, KeyCacheTTL: time.Minute}})
			key, _, err := apikey.Create(t.Context(), s.rdb, "initech", "")
			if err != nil {
				t.Fatal(err)
			}
			s.key = key
			if r := s.do("GET", "/api/v1/models", nil, nil); r.code != http.StatusOK {
				t.Fatalf("with Redis up: %d", r.code) // and the key is cached
			}
			own.Stop()
			r := s.do("GET", "/api/v1/models", nil, nil)
			if r.code != want || (want != http.StatusOK && r.json(t)["code"] != "queue_unavailable") {
				t.Errorf("with Redis down: %d %s, want %d", r.code, r.body, want)
			}
			if err := own.Restart(); err != nil {
				t.Fatal(err)
			}
			m := samples(scrape(t, s.url))
			if n := m[series("hokusai_api_rate_limit_errors_total")]; n < 1 {
				t.Errorf("rate limit errors counted: %v", n)
			}
		})
	}
}

// A partner past its limit that writes its whole body before reading, as
// Python's clients do, reads its 429 and keeps its connection when the
// body is a predict's size; a megabyte body past the limit is not read:
// the connection closes after the answer.
func TestRateLimitedBodies(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{RateLimit: "1/h"}})
	key, _, err := apikey.Create(t.Context(), s.rdb, "initech", "")
	if err != nil {
		t.Fatal(err)
	}
	s.key = key
	p := s.dialPy(t)
	small := []byte(`{"inputs": ` + lead + `, "pad": "` + strings.Repeat("x", 32<<10) + `"}`)
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests, http.StatusTooManyRequests} {
		resp, body, err := p.exchange("/api/v1/models/21/predict", "application/json", small, false)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("request %d on one connection: %v %v %s, want %d", i+1, err, resp, body, want)
		}
	}
	big := []byte(`{"inputs": {"title": "` + strings.Repeat("x", 1<<20) + `"}}`)
	q := s.dialPy(t)
	resp, body, err := q.exchange("/api/v1/models/21/predict", "application/json", big, false)
	if closed(err) {
		return // cut while the client still wrote: the body was not read
	}
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || !resp.Close {
		t.Fatalf("a 1 MiB body past the limit: %v %v %s, want 429 and Connection: close", err, resp, body)
	}
}

// Batch rows count against their own quota, chunk by chunk as they are
// stored, and never against the request limit: a file that would pass the
// quota is refused whole, and the key's requests are charged one for it.
func TestBatchRowQuota(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{RateLimit: "100/h", BatchRowLimit: "300/d",
		Batch: api.BatchConfig{ChunkRows: 64}}})
	ctx := t.Context()
	key, rec, err := apikey.Create(ctx, s.rdb, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	s.key = key
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 200, nil), "text/csv", "", nil))
	if st := s.waitBatch(id, time.Minute); st.RowsDone != 200 {
		t.Fatalf("first batch: %+v", st)
	}
	before := remaining(t, s.do("GET", "/api/v1/models", nil, nil))
	r := s.submitBatch(leadsCSV(t, 150, nil), "text/csv", "", nil)
	if r.code != http.StatusTooManyRequests || r.json(t)["code"] != "rate_limited" || r.header.Get("Retry-After") == "" ||
		!strings.Contains(string(r.body), "300/d batch rows") {
		t.Fatalf("150 rows with 100 left: %d %s (Retry-After %q)", r.code, r.body, r.header.Get("Retry-After"))
	}
	// The 150-row submission cost one request, as the GET after it.
	if after := remaining(t, s.do("GET", "/api/v1/models", nil, nil)); after != before-2 {
		t.Fatalf("requests left: %d before the submission, %d after it and a GET", before, after)
	}
	// The refused file left no batch behind.
	var open int
	for _, k := range s.rdb.Keys(ctx, "hokusai:batch:*").Val() {
		if !strings.Contains(k, id) {
			open++
		}
	}
	if open != 0 {
		t.Errorf("%d keys of the refused batch remain", open)
	}
	// The tenant's own quota, set by the CLI's path, lifts it.
	if err := apikey.SetTenantLimits(ctx, s.rdb, "acme", apikey.Change{BatchRows: ptr("unlimited")}); err != nil {
		t.Fatal(err)
	}
	if _, err := apikey.SetLimits(ctx, s.rdb, rec.ID, apikey.Change{BatchRows: ptr("unlimited")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return s.submitBatch(leadsCSV(t, 150, nil), "text/csv", "", nil).code == http.StatusAccepted
	}, "the lifted quota never applied")
}

func ptr(s string) *string { return &s }

// remaining reads r's RateLimit header's remaining requests.
func remaining(t *testing.T, r reply) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(r.header.Get("RateLimit"), `"key";r=%d;`, &n); err != nil {
		t.Fatalf("RateLimit %q: %v", r.header.Get("RateLimit"), err)
	}
	return n
}
