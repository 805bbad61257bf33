package stacktest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// oldTimestamp is the form of the old API's timestamps.
const oldTimestamp = "2006-01-02T15:04:05.000Z"

// oldResponse is the old API's documented answer for model 21
// (../shared/compat/README.md): partners' code reads these fields, with
// these JSON types.
const oldResponse = `{"model_id": "21",
 "predictions": {"lead_score": 78, "conversion_probability": 0.78, "recommendation": "Hot",
                 "factors": ["Demo requested", "High engagement"], "confidence": 0.85},
 "metadata": {"api_version": "1.0", "inference_method": "local"},
 "timestamp": "2025-10-01T13:00:00.000Z"}`

// corpusRequest is one request of the old API's documentation.
type corpusRequest struct {
	name   string
	body   []byte         // as documented
	inputs map[string]any // its "inputs"
}

// timeline is the request's decision_timeline.
func (r corpusRequest) timeline() string { s, _ := r.inputs["decision_timeline"].(string); return s }

// past reports whether its timeline is a quarter that ended before today:
// every quarter of 2025 is, from 2026 on.
func (r corpusRequest) past() bool {
	return strings.HasPrefix(r.timeline(), "Q") && strings.HasSuffix(r.timeline(), " 2025")
}

// compatCorpus reads the documented requests, kept in testdata as
// ../shared/compat/requests has them (TestCompatCorpusIsTheContract).
func compatCorpus(t testing.TB) []corpusRequest {
	t.Helper()
	var out []corpusRequest
	add := func(name string, body []byte) {
		var req struct{ Inputs map[string]any }
		if err := json.Unmarshal(body, &req); err != nil || req.Inputs == nil {
			t.Fatalf("%s: not a request: %v", name, err)
		}
		out = append(out, corpusRequest{name: name, body: body, inputs: req.Inputs})
	}
	doc, err := os.ReadFile("testdata/compat/documented.json")
	if err != nil {
		t.Fatal(err)
	}
	add("documented", bytes.TrimSpace(doc))
	lines, err := os.ReadFile("testdata/compat/timelines.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		add(fmt.Sprintf("timelines.jsonl:%d", i+1), line)
	}
	return out
}

// TestCompatCorpusIsTheContract: the corpus here is the published one,
// byte for byte, wherever ../shared is beside the repository (CI has it).
func TestCompatCorpusIsTheContract(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "compat", "requests")
	entries, err := os.ReadDir(shared)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI has ../shared beside the repository, yet: %v", err)
		}
		t.Skipf("no published corpus to compare with: %v", err)
	}
	for _, e := range entries {
		want, err := os.ReadFile(filepath.Join(shared, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("testdata", "compat", e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/compat/%s differs from %s (%v): copy it again", e.Name(), filepath.Join(shared, e.Name()), err)
		}
	}
}

// checkOldContract checks a predict answer against the old API's: every
// field it had, with the same JSON type, and the documented ranges.
func checkOldContract(t testing.TB, body []byte) map[string]any {
	t.Helper()
	var want, got map[string]any
	if err := json.Unmarshal([]byte(oldResponse), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, body)
	}
	sameShape(t, "", want, got)
	p, _ := got["predictions"].(map[string]any)
	score, _ := p["lead_score"].(float64)
	prob, _ := p["conversion_probability"].(float64)
	conf, _ := p["confidence"].(float64)
	rec := "Cold"
	if score >= 70 {
		rec = "Hot"
	} else if score >= 40 {
		rec = "Warm"
	}
	if score < 0 || score > 100 || prob < 0 || prob > 1 || conf < 0 || conf > 1 || p["recommendation"] != rec {
		t.Errorf("predictions outside the contract: %v", p)
	}
	m, _ := got["metadata"].(map[string]any)
	if m["api_version"] != "1.0" {
		t.Errorf("metadata.api_version %v, want the old API's 1.0", m["api_version"])
	}
	if _, err := time.Parse(oldTimestamp, got["timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	return got
}

// sameShape requires every key of want in got, with the same JSON type; a
// number that is whole in want must be whole in got, and every item of a
// list in got must have the shape of want's first.
func sameShape(t testing.TB, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want an object", path, got)
			return
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s.%s is missing", path, k)
				continue
			}
			sameShape(t, path+"."+k, v, gv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			t.Errorf("%s: %T, want a list", path, got)
			return
		}
		for i, item := range g {
			sameShape(t, fmt.Sprintf("%s[%d]", path, i), w[0], item)
		}
	case float64:
		g, ok := got.(float64)
		if !ok || (w == math.Trunc(w)) != (g == math.Trunc(g)) && w == math.Trunc(w) {
			t.Errorf("%s: %v, want a number like %v", path, got, w)
		}
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			t.Errorf("%s: %T, want %T", path, got, want)
		}
	}
}

// warningCodes lists a predict answer's warnings as "field:code".
func warningCodes(answer map[string]any) []string {
	m, _ := answer["metadata"].(map[string]any)
	ws, _ := m["warnings"].([]any)
	codes := []string{}
	for _, w := range ws {
		w, _ := w.(map[string]any)
		codes = append(codes, fmt.Sprintf("%v:%v", w["field"], w["code"]))
	}
	return codes
}

// TestCompatCorpus replays every documented request of the old API through
// the running stack, sync, async and as batch rows (CSV and JSONL): each
// scores, in the old response's shape, and the 2025 quarters (past now)
// come with a warning saying how they were read.
func TestCompatCorpus(t *testing.T) {
	s := startStack(t, smallChunks)
	corpus := compatCorpus(t)
	for _, req := range corpus {
		t.Run(req.name, func(t *testing.T) {
			want := []string{}
			if req.past() {
				want = []string{"decision_timeline:" + jobs.CodeTimelinePast}
			}
			r := s.do("POST", "/api/v1/models/21/predict", req.body, nil)
			if r.code != http.StatusOK {
				t.Fatalf("sync: %d %s", r.code, r.body)
			}
			if got := warningCodes(checkOldContract(t, r.body)); !slices.Equal(got, want) {
				t.Errorf("sync warnings %v, want %v", got, want)
			}
			r = s.do("POST", "/api/v1/models/21/jobs", req.body, nil)
			if r.code != http.StatusAccepted {
				t.Fatalf("async: %d %s", r.code, r.body)
			}
			job := s.waitJob(t, r.json(t)["request_id"].(string), "succeeded")
			result, _ := json.Marshal(job["result"])
			if got := warningCodes(checkOldContract(t, result)); !slices.Equal(got, want) {
				t.Errorf("async warnings %v, want %v", got, want)
			}
		})
	}

	// The same rows as a batch, as JSONL and as a CSV export of them.
	var jsonl, csvBody bytes.Buffer
	cw := csv.NewWriter(&csvBody)
	cols := []string{"id"}
	for k := range corpus[0].inputs {
		cols = append(cols, k)
	}
	slices.Sort(cols[1:])
	_ = cw.Write(cols)
	warned := 0
	for i, req := range corpus {
		row := map[string]any{"id": req.name}
		cells := []string{req.name}
		for _, k := range cols[1:] {
			row[k] = req.inputs[k]
			cells = append(cells, fmt.Sprint(req.inputs[k]))
		}
		line, _ := json.Marshal(row)
		jsonl.Write(append(line, '\n'))
		_ = cw.Write(cells)
		if req.past() {
			warned++
		}
		if i == 0 && !req.past() {
			t.Fatal("the documented request's Q2 2025 is past: the test's expectations assume it")
		}
	}
	cw.Flush()
	for _, tc := range []struct{ ctype, body string }{{"application/x-ndjson", jsonl.String()}, {"text/csv", csvBody.String()}} {
		t.Run("batch "+tc.ctype, func(t *testing.T) {
			id := s.acceptedBatch(s.submitBatch([]byte(tc.body), tc.ctype, "", nil))
			b := s.waitBatch(id, 30*time.Second)
			if b.Status != jobs.BatchSucceeded || b.RowsDone != len(corpus) || b.RowsFailed != 0 || b.RowsWarned != warned {
				t.Fatalf("status %+v, want %d rows scored, %d of them warned", b, len(corpus), warned)
			}
			lines := bytes.Split(bytes.TrimSuffix(s.results(id, "jsonl"), []byte("\n")), []byte("\n"))
			if len(lines) != len(corpus)+1 { // the rows, then the end marker
				t.Fatalf("%d result lines for %d rows", len(lines), len(corpus))
			}
			for i, line := range lines[:len(corpus)] {
				var row struct {
					ID        string         `json:"id"`
					LeadScore *int           `json:"lead_score"`
					Warnings  []jobs.Warning `json:"warnings"`
				}
				if err := json.Unmarshal(line, &row); err != nil {
					t.Fatal(err)
				}
				past := corpus[i].past()
				if row.ID != corpus[i].name || row.LeadScore == nil || past != (len(row.Warnings) == 1) ||
					past && row.Warnings[0].Code != jobs.CodeTimelinePast {
					t.Errorf("row %d: %s", i, line)
				}
			}
		})
	}

	// As of the old docs' own time, their quarters are ahead, not past: no
	// warning, and Q2 2025 reads as the bucket holding mid-May 2025.
	var doc map[string]any
	if err := json.Unmarshal(corpus[0].body, &doc); err != nil {
		t.Fatal(err)
	}
	doc["options"] = map[string]any{"as_of": "2025-01-15"}
	asOf, _ := json.Marshal(doc)
	r := s.do("POST", "/api/v1/models/21/predict", asOf, nil)
	if r.code != http.StatusOK {
		t.Fatalf("as_of: %d %s", r.code, r.body)
	}
	answer := checkOldContract(t, r.body)
	doc["inputs"].(map[string]any)["decision_timeline"] = "3-6 months"
	delete(doc, "options")
	bucket, _ := json.Marshal(doc)
	r = s.do("POST", "/api/v1/models/21/predict", bucket, nil)
	if r.code != http.StatusOK {
		t.Fatalf("bucket: %d %s", r.code, r.body)
	}
	if got := warningCodes(answer); len(got) != 0 || leadScore(answer) != leadScore(r.json(t)) {
		t.Errorf("as of 2025-01-15, Q2 2025 scored %v with warnings %v; 3-6 months scores %v",
			leadScore(answer), got, leadScore(r.json(t)))
	}

	// Strict parsing refuses the guess, naming the field.
	doc["inputs"].(map[string]any)["decision_timeline"] = "Q2 2025"
	doc["options"] = map[string]any{"strict": true}
	strict, _ := json.Marshal(doc)
	r = s.do("POST", "/api/v1/models/21/predict", strict, nil)
	if r.code != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"field":"decision_timeline"`) {
		t.Errorf("strict: %d %s", r.code, r.body)
	}
}

func leadScore(answer map[string]any) any {
	p, _ := answer["predictions"].(map[string]any)
	return p["lead_score"]
}

// TestLaxInputsEveryPath: sync, async and batch read inputs alike: numbers
// sent as strings, a value the model does not know (scored as the field's
// default, with a warning), a field it does not take (ignored, with a
// warning); strict parsing refuses the same, and the warnings are counted
// by model, field and code, never by value.
func TestLaxInputsEveryPath(t *testing.T) {
	s := startStack(t, smallChunks)
	const odd = `{"company_size": " 250 ", "engagement_score": "82", "industry": "Aerospace", "lead_owner": "ann",
		"demo_requested": "yes", "decision_timeline": "1-3 months", "title": "VP of Sales"}`
	const plain = `{"company_size": 250, "engagement_score": 82, "industry": "Other",
		"demo_requested": true, "decision_timeline": "1-3 months", "title": "VP of Sales"}`
	want := []string{"lead_owner:" + jobs.CodeUnknownField, "industry:" + jobs.CodeUnknownValue}

	r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+plain+`}`), nil)
	if r.code != http.StatusOK {
		t.Fatalf("plain: %d %s", r.code, r.body)
	}
	score := leadScore(r.json(t))
	r = s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+odd+`}`), nil)
	if r.code != http.StatusOK {
		t.Fatalf("sync: %d %s", r.code, r.body)
	}
	if got := warningCodes(r.json(t)); !slices.Equal(got, want) || leadScore(r.json(t)) != score {
		t.Errorf("sync: warnings %v, score %v; want %v and the plain lead's %v", got, leadScore(r.json(t)), want, score)
	}
	r = s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+odd+`}`), map[string]string{"Prefer": "respond-async"})
	if r.code != http.StatusAccepted {
		t.Fatalf("async: %d %s", r.code, r.body)
	}
	job := s.waitJob(t, r.json(t)["request_id"].(string), "succeeded")
	if got := warningCodes(job["result"].(map[string]any)); !slices.Equal(got, want) {
		t.Errorf("async: warnings %v, want %v", got, want)
	}
	r = s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+odd+`, "options": {"strict": true}}`), nil)
	var refused struct{ Errors []jobs.FieldError }
	_ = json.Unmarshal(r.body, &refused)
	var fields []string
	for _, e := range refused.Errors {
		fields = append(fields, e.Field+":"+e.Code)
	}
	wantErrs := []string{"company_size:invalid_type", "engagement_score:invalid_type", "industry:invalid_value",
		"lead_owner:unknown_field"} // booleans as words are read in both modes
	if r.code != http.StatusUnprocessableEntity || !slices.Equal(fields, wantErrs) {
		t.Errorf("strict: %d %v, want 422 with %v", r.code, fields, wantErrs)
	}

	// Batches: the same row as JSONL, then in a CSV with a column the model
	// does not take; strictly, the JSONL row fails.
	var line bytes.Buffer
	if err := json.Compact(&line, []byte(odd)); err != nil {
		t.Fatal(err)
	}
	csvBody := "id,lead_owner,company_size,engagement_score,industry,demo_requested,decision_timeline,title\n" +
		"a,ann, 250 ,82,Aerospace,yes,1-3 months,VP of Sales\n"
	for _, tc := range []struct {
		name, ctype, query, body string
		fileWarning              bool
		rowWarnings              []string
	}{
		{"jsonl", "application/x-ndjson", "", line.String() + "\n", false, want},
		{"csv", "text/csv", "", csvBody, true, want[1:]},
	} {
		t.Run("batch "+tc.name, func(t *testing.T) {
			r := s.submitBatch([]byte(tc.body), tc.ctype, tc.query, nil)
			id := s.acceptedBatch(r)
			if warns, _ := r.json(t)["warnings"].([]any); (len(warns) == 1) != tc.fileWarning ||
				tc.fileWarning && !strings.Contains(fmt.Sprint(warns), `"lead_owner"`) {
				t.Errorf("202 warnings %v", warns)
			}
			if b := s.waitBatch(id, 30*time.Second); b.RowsDone != 1 || b.RowsFailed != 0 || b.RowsWarned != 1 {
				t.Fatalf("status %+v", b)
			}
			var row struct {
				LeadScore any            `json:"lead_score"`
				Warnings  []jobs.Warning `json:"warnings"`
			}
			first, _, _ := bytes.Cut(s.results(id, "jsonl"), []byte("\n")) // then the end marker
			if err := json.Unmarshal(first, &row); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range row.Warnings {
				got = append(got, w.Field+":"+w.Code)
			}
			if !slices.Equal(got, tc.rowWarnings) || row.LeadScore != score {
				t.Errorf("row warnings %v, score %v; want %v and %v", got, row.LeadScore, tc.rowWarnings, score)
			}
		})
	}
	id := s.acceptedBatch(s.submitBatch(append(line.Bytes(), '\n'), "application/x-ndjson", "?strict=true", nil))
	if b := s.waitBatch(id, 30*time.Second); b.RowsFailed != 1 {
		t.Errorf("strict batch: %+v, want its row failed", b)
	}

	// Counted by model, field and code; the caller's names and values are
	// never label values.
	text := ""
	for _, url := range s.health {
		text += scrape(t, url)
	}
	got := samples(text)
	for _, sr := range []struct {
		field, code string
		n           float64
	}{{"industry", jobs.CodeUnknownValue, 4}, {"(unknown)", jobs.CodeUnknownField, 3}} {
		name := series("hokusai_worker_input_warnings_total", "code", sr.code, "field", sr.field, "model_id", "21")
		if got[name] != sr.n {
			t.Errorf("%s = %v, want %v", name, got[name], sr.n)
		}
	}
	if strings.Contains(text, "Aerospace") || strings.Contains(text, "lead_owner") {
		t.Error("a caller's value or field name reached /metrics")
	}
}
