package stacktest

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/usage"
)

// usageTally is what a tenant's traffic should show, per key id: counted
// by the test as it sends.
type usageTally map[string]*usage.Row

// partner sends one tenant's traffic and tallies it.
type partner struct {
	s     *stack
	key   string // the tenant's first key
	tally usageTally
}

func (p *partner) send(key, method, path string, body []byte, headers map[string]string) reply {
	p.s.t.Helper()
	h := map[string]string{"X-API-Key": key}
	for k, v := range headers {
		h[k] = v
	}
	r := p.s.do(method, path, body, h)
	row := p.row(key)
	row.Requests++
	if r.code >= 400 {
		row.Errors++
	}
	return r
}

func (p *partner) row(key string) *usage.Row {
	id := apikey.Hash(key)[:12]
	if p.tally[id] == nil {
		p.tally[id] = &usage.Row{KeyID: id}
	}
	return p.tally[id]
}

// until polls path with key until done says so, tallying every poll.
func (p *partner) until(key, path string, done func(map[string]any) bool) {
	p.s.t.Helper()
	eventually(p.s.t, 30*time.Second, func() bool {
		r := p.send(key, "GET", path, nil, nil)
		return r.code == http.StatusOK && done(r.json(p.s.t))
	}, "%s never finished; logs:\n%s", path, p.s.logs)
}

// traffic is a tenant's scripted mix: n sync predicts of one row, a list
// of list rows, two async jobs (1 and 2 rows), a batch of batch rows with
// bad of them invalid, invalid inputs, an unknown model, an unknown job,
// and a key of its own limited to 1/h that is refused once.
func (p *partner) traffic(tenant string, n, list, batch int, bad map[int]bool) {
	s := p.s
	t := s.t
	key, _, err := apikey.Create(t.Context(), s.rdb, tenant, "unlimited")
	if err != nil {
		t.Fatal(err)
	}
	p.key = key
	for range n {
		if r := p.send(key, "POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), nil); r.code != http.StatusOK {
			t.Fatalf("predict: %d %s", r.code, r.body)
		}
	}
	rows := `{"inputs": [` + strings.Repeat(lead+",", list-1) + lead + `]}`
	if r := p.send(key, "POST", "/api/v1/models/21/predict", []byte(rows), nil); r.code != http.StatusOK {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	p.row(key).Rows += int64(n + list)
	for _, body := range []string{`{"inputs": ` + lead + `}`, `{"inputs": [` + lead + `,` + lead + `]}`} {
		r := p.send(key, "POST", "/api/v1/models/21/jobs", []byte(body), nil)
		if r.code != http.StatusAccepted {
			t.Fatalf("job: %d %s", r.code, r.body)
		}
		url, _ := r.json(t)["status_url"].(string)
		p.until(key, url, func(j map[string]any) bool { return j["status"] == "succeeded" })
	}
	p.row(key).Rows += 3
	r := p.send(key, "POST", "/api/v1/models/21/batches", leadsCSV(t, batch, bad), map[string]string{"Content-Type": "text/csv"})
	id := s.acceptedBatch(r)
	p.until(key, "/api/v1/batches/"+id, func(b map[string]any) bool { return b["finished_at"] != nil })
	p.row(key).BatchRows += int64(batch - len(bad))
	p.row(key).FailedRows += int64(len(bad))
	for _, bad := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/api/v1/models/21/predict", `{"inputs": {"company_size": "many"}}`, http.StatusUnprocessableEntity},
		{"POST", "/api/v1/models/21/predict", `{"inputs": `, http.StatusBadRequest},
		{"POST", "/api/v1/models/99/predict", `{"inputs": ` + lead + `}`, http.StatusNotFound},
		{"GET", "/api/v1/jobs/no-such-job", "", http.StatusNotFound},
	} {
		if r := p.send(key, bad.method, bad.path, []byte(bad.body), nil); r.code != bad.code {
			t.Fatalf("%s %s: %d, want %d", bad.method, bad.path, r.code, bad.code)
		}
	}
	limited, _, err := apikey.Create(t.Context(), s.rdb, tenant, "1/h")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{http.StatusOK, http.StatusTooManyRequests} {
		if r := p.send(limited, "GET", "/api/v1/models", nil, nil); r.code != code {
			t.Fatalf("limited key: %d, want %d", r.code, code)
		}
	}
	// Neither a request without a valid key nor a read of usage counts.
	if r := s.do("GET", "/api/v1/models", nil, map[string]string{"X-API-Key": "hk_not-a-key"}); r.code != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", r.code)
	}
	if r := s.do("GET", "/api/v1/usage", nil, map[string]string{"X-API-Key": key}); r.code != http.StatusOK {
		t.Fatalf("usage: %d %s", r.code, r.body)
	}
}

// byKey sums usage rows per key id, over days and models, without
// compute (a measure, not a count); it fails on a row of another tenant.
func byKey(t testing.TB, tenant string, rows []usage.Row) usageTally {
	t.Helper()
	out := usageTally{}
	for _, r := range rows {
		if r.Tenant != tenant {
			t.Fatalf("%s's usage shows a row of %s: %+v", tenant, r.Tenant, r)
		}
		if r.ModelID != "" && r.ModelID != "21" {
			t.Errorf("a row of model %q: only registered models are counted", r.ModelID)
		}
		sum := out[r.KeyID]
		if sum == nil {
			sum = &usage.Row{KeyID: r.KeyID}
			out[r.KeyID] = sum
		}
		sum.Requests += r.Requests
		sum.Errors += r.Errors
		sum.Rows += r.Rows
		sum.BatchRows += r.BatchRows
		sum.FailedRows += r.FailedRows
	}
	return out
}

// apiUsage is GET /api/v1/usage as key sees it, for today.
func apiUsage(t testing.TB, s *stack, key string) (tenant string, rows []usage.Row) {
	t.Helper()
	r := s.do("GET", "/api/v1/usage?since="+time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), nil, map[string]string{"X-API-Key": key})
	var u struct {
		Tenant string      `json:"tenant"`
		Usage  []usage.Row `json:"usage"`
	}
	if r.code != http.StatusOK || json.Unmarshal(r.body, &u) != nil {
		t.Fatalf("usage: %d %s", r.code, r.body)
	}
	return u.Tenant, u.Usage
}

// cliUsage runs hokusai usage --format csv on the stack's Redis and returns
// its rows by tenant.
func cliUsage(t testing.TB, bin string) map[string][]usage.Row {
	t.Helper()
	cmd := exec.Command(bin, "usage", "--format", "csv", "--since", time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	cmd.Env = append(os.Environ(), "REDIS_URL="+srv.URL)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hokusai usage: %v", err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil || len(recs) == 0 || recs[0][0] != "day" {
		t.Fatalf("hokusai usage printed %q: %v", out, err)
	}
	by := map[string][]usage.Row{}
	for _, r := range recs[1:] {
		n := func(i int) int64 { v, _ := strconv.ParseInt(r[i], 10, 64); return v }
		by[r[1]] = append(by[r[1]], usage.Row{Day: r[0], Tenant: r[1], KeyID: r[2], ModelID: r[3],
			Requests: n(4), Errors: n(5), Rows: n(6), BatchRows: n(7), FailedRows: n(8)})
	}
	return by
}

// After two tenants' scripted traffic, GET /api/v1/usage (each tenant's
// own only) and hokusai usage show exactly the requests, errors, rows,
// batch rows and failed rows sent, per key; compute is there for what was
// scored; Prometheus counts the same by tenant.
func TestUsageMatchesTraffic(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hokusai")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/hokusai").CombinedOutput(); err != nil {
		t.Fatalf("build hokusai: %v\n%s", err, out)
	}
	s := startStack(t, smallChunks)
	partners := map[string]*partner{"tenant-a": {s: s, tally: usageTally{}}, "tenant-b": {s: s, tally: usageTally{}}}
	partners["tenant-a"].traffic("tenant-a", 3, 5, 150, map[int]bool{0: true, 70: true, 149: true})
	partners["tenant-b"].traffic("tenant-b", 1, 2, 20, map[int]bool{3: true})

	for tenant, p := range partners {
		var got usageTally
		var rows []usage.Row
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var seen string
			seen, rows = apiUsage(t, s, p.key)
			if seen != tenant {
				t.Fatalf("%s's key reads the usage of %q", tenant, seen)
			}
			if got = byKey(t, tenant, rows); cmp.Equal(p.tally, got) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's usage never matched its traffic (-want +got):\n%s", tenant, cmp.Diff(p.tally, got))
			}
		}
		for _, r := range rows {
			if r.Rows+r.BatchRows > 0 && r.ComputeSeconds <= 0 {
				t.Errorf("%s: rows scored without compute: %+v", tenant, r)
			}
		}
	}
	for _, q := range []string{"since=2020-01-01&until=2021-12-31", "since=yesterday", "since=2026-12-02&until=2026-12-01"} {
		r := s.do("GET", "/api/v1/usage?"+q, nil, nil)
		if r.code != http.StatusUnprocessableEntity || r.json(t)["code"] != "invalid_input" {
			t.Errorf("usage?%s: %d %s, want 422 invalid_input", q, r.code, r.body)
		}
	}
	byTenant := cliUsage(t, bin)
	for tenant, p := range partners {
		if d := cmp.Diff(p.tally, byKey(t, tenant, byTenant[tenant])); d != "" {
			t.Errorf("hokusai usage of %s (-want +got):\n%s", tenant, d)
		}
	}

	api := samples(scrape(t, s.url))
	var workers []map[string]float64
	for _, url := range s.health {
		workers = append(workers, samples(scrape(t, url)))
	}
	for tenant, p := range partners {
		var want usage.Row
		for _, r := range p.tally {
			want.Requests, want.Errors, want.Rows, want.BatchRows = want.Requests+r.Requests, want.Errors+r.Errors, want.Rows+r.Rows, want.BatchRows+r.BatchRows
		}
		for name, v := range map[string]float64{
			series("hokusai_api_tenant_requests_total", "tenant", tenant): float64(want.Requests),
			series("hokusai_api_tenant_errors_total", "tenant", tenant):   float64(want.Errors),
		} {
			if api[name] != v {
				t.Errorf("%s = %v, want %v", name, api[name], v)
			}
		}
		if w := workers[0]; w[series("hokusai_worker_tenant_rows_total", "tenant", tenant)] != float64(want.Rows) ||
			w[series("hokusai_worker_tenant_batch_rows_total", "tenant", tenant)] != float64(want.BatchRows) {
			t.Errorf("%s: worker counts %v rows and %v batch rows, want %d and %d", tenant,
				w[series("hokusai_worker_tenant_rows_total", "tenant", tenant)], w[series("hokusai_worker_tenant_batch_rows_total", "tenant", tenant)],
				want.Rows, want.BatchRows)
		}
	}
}
