package stacktest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/jobs"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

var gzipHeader = map[string]string{"Content-Encoding": "gzip"}

// CSV and JSONL batches sent with Content-Encoding: gzip are scored row by
// row as the same files sent as they are.
func TestGzipBatchesScore(t *testing.T) {
	s := startStack(t, smallChunks)
	bad := map[int]bool{3: true, 150: true}
	csv := leadsCSV(t, 200, bad)
	var jsonl bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&jsonl, `{"id": "L%d", "company_size": %d, "engagement_score": 50, "industry": "Finance", "title": "CTO"}`+"\n", i, 10+i)
	}
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		bad         map[int]bool
	}{
		{"csv", "text/csv", csv, bad},
		{"jsonl", "application/x-ndjson", jsonl.Bytes(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := s.acceptedBatch(s.submitBatch(tc.body, tc.ctype, "", nil))
			zipped := s.acceptedBatch(s.submitBatch(gzipped(t, tc.body), tc.ctype, "", gzipHeader))
			s.waitBatch(plain, 30*time.Second)
			s.waitBatch(zipped, 30*time.Second)
			want := checkCSVResults(t, s.results(plain, "csv"), 200, tc.bad)
			got := checkCSVResults(t, s.results(zipped, "csv"), 200, tc.bad)
			for i := range got {
				if strings.Join(got[i][:6], ",") != strings.Join(want[i][:6], ",") {
					t.Fatalf("row %d scored %v gzipped, %v as is", i-1, got[i], want[i])
				}
			}
		})
	}
}

// gzipBomb is a CSV that decompresses to size bytes of one lead repeated,
// from about a thousandth of that: one gzip member of the header and a MiB
// of rows, then copies of a member of a MiB of rows (gzip readers read
// members one after another).
func gzipBomb(t testing.TB, size int) []byte {
	head, row, _ := strings.Cut(string(leadsCSV(t, 1, nil)), "\n")
	rows := strings.Repeat(row, (1<<20)/len(row))
	out := gzipped(t, []byte(head+"\n"+rows))
	member := gzipped(t, []byte(rows))
	for len(out) < size/len(rows)*len(member) {
		out = append(out, member...)
	}
	return out
}

// A gzip bomb (1 GiB of rows from 4 MB) is refused with 413 as soon as it
// expands past the ratio limit: the API neither holds what it decompresses
// (its allocations stay a few MiB) nor stores it (a Redis of its own never
// holds more than a few MiB), where the 64 MiB batch limit alone would
// have let it read and store 64 MiB. No worker runs, so what the process
// allocates is the API's.
func TestGzipBomb(t *testing.T) {
	own := ownRedis(t)
	s := startStack(t, stackOptions{redisURL: own.URL, noWorker: true, api: api.Config{Batch: api.BatchConfig{MaxBytes: 64 << 20}}})
	s.publishWithoutWorker(own.URL)
	bomb := gzipBomb(t, 1<<30)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := s.submitBatch(bomb, "text/csv", "", gzipHeader)
	runtime.ReadMemStats(&after)
	if r.code != http.StatusRequestEntityTooLarge || r.json(t)["code"] != "payload_too_large" ||
		!strings.Contains(r.json(t)["detail"].(string), "200-fold") {
		t.Fatalf("a %d-byte gzip bomb answered %d %s, want 413 naming the ratio", len(bomb), r.code, r.body)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("refusing the bomb allocated %d MiB", n>>20)
	}
	if peak := redisMemory(t, s, "used_memory_peak"); peak > 16<<20 {
		t.Errorf("Redis held %d MiB at its peak", peak>>20)
	}
	if keys := s.rdb.Keys(t.Context(), jobs.BatchKey("*")+"*").Val(); len(keys) != 0 {
		t.Errorf("the refused batch left %v", keys) // its queued chunks find nothing, and end
	}
}

// A gzipped predict or job scores as the same body sent as is; the body
// limit holds for the decompressed bytes, and a body that is not gzip is
// refused.
func TestGzipPredict(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{MaxBodyBytes: 4096}})
	body := []byte(`{"inputs": ` + lead + `}`)
	plain := s.do("POST", "/api/v1/models/21/predict", body, nil)
	if plain.code != http.StatusOK {
		t.Fatalf("plain predict: %d %s", plain.code, plain.body)
	}
	want := plain.json(t)["predictions"]
	for _, coding := range []string{"gzip", "x-gzip", "GZIP", "identity, gzip"} {
		r := s.do("POST", "/api/v1/models/21/predict", gzipped(t, body), map[string]string{"Content-Encoding": coding})
		if r.code != http.StatusOK || fmt.Sprint(r.json(t)["predictions"]) != fmt.Sprint(want) {
			t.Errorf("Content-Encoding: %s predict: %d %s, want the plain answer's predictions", coding, r.code, r.body)
		}
	}
	r := s.do("POST", "/api/v1/models/21/jobs", gzipped(t, body), gzipHeader)
	if r.code != http.StatusAccepted {
		t.Fatalf("gzipped job: %d %s", r.code, r.body)
	}
	if job := s.waitJob(t, r.json(t)["request_id"].(string), "succeeded"); fmt.Sprint(job["result"].(map[string]any)["predictions"]) != fmt.Sprint(want) {
		t.Errorf("gzipped job scored %v, want %v", job["result"], want)
	}

	big := gzipped(t, []byte(`{"inputs": {"title": "`+strings.Repeat("x", 8192)+`"}}`)) // small compressed, over 4096 decompressed
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"over the limit decompressed", big, 413, "payload_too_large"},
		{"not gzip", body, 400, "bad_request"},
		{"cut short", gzipped(t, body)[:40], 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do("POST", "/api/v1/models/21/predict", tc.body, gzipHeader)
			if e := r.json(t); r.code != tc.status || e["code"] != tc.code || tc.code == "bad_request" && !strings.Contains(e["detail"].(string), "gzip") {
				t.Fatalf("answered %d %s, want %d %s", r.code, r.body, tc.status, tc.code)
			}
		})
	}
}

// Codings other than gzip, charsets other than UTF-8 and JSON that is not
// UTF-8 are refused, naming what is wrong; UTF-8 and US-ASCII named in any
// case, and identity, are accepted.
func TestEdgeEncodingsAndCharsets(t *testing.T) {
	s := startStack(t, stackOptions{})
	predict, batch := "/api/v1/models/21/predict", "/api/v1/models/21/batches"
	body := `{"inputs": ` + lead + `}`
	utf16 := "\xff\xfe" + strings.Join(strings.Split(body, ""), "\x00") + "\x00"
	csv := string(leadsCSV(t, 3, nil))
	for _, tc := range []struct {
		name, path, ctype, coding, body string
		status                          int
		code, names                     string
	}{
		{"brotli predict", predict, "application/json", "br", body, 415, "unsupported_media_type", `"br"`},
		{"deflate batch", batch, "text/csv", "deflate", csv, 415, "unsupported_media_type", `"deflate"`},
		{"gzip twice", predict, "application/json", "gzip, gzip", body, 415, "unsupported_media_type", `"gzip, gzip"`},
		{"UTF-16 predict", predict, "application/json; charset=utf-16", "", utf16, 415, "unsupported_media_type", `"utf-16"`},
		{"Latin-1 CSV", batch, "text/csv; charset=ISO-8859-1", "", csv, 415, "unsupported_media_type", `"ISO-8859-1"`},
		{"UTF-16 JSONL", batch, "application/x-ndjson; charset=UTF-16LE", "", "{}\n", 415, "unsupported_media_type", `"UTF-16LE"`},
		{"UTF-16 without a charset", predict, "application/json", "", utf16, 400, "bad_request", "UTF-8"},
		{"Latin-1 in JSON", predict, "application/json", "", `{"inputs": {"title": "Directeur g` + "\xe9" + `n` + "\xe9" + `ral"}}`, 400, "bad_request", "byte 33"},
		{"Latin-1 in a JSON batch", batch, "application/json", "", `{"inputs": [{}, {"title": "` + "\xe9" + `"}]}`, 400, "bad_request", "Input 1"},
		{"upper-case UTF-8", predict, "application/json; charset=UTF-8", "", body, 200, "", ""},
		{"US-ASCII", predict, `application/json; charset="us-ascii"`, "", body, 200, "", ""},
		{"identity", predict, "application/json", "identity", body, 200, "", ""},
		{"UTF-8 CSV", batch, "text/csv; charset=utf-8", "", csv, 202, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.doText("POST", tc.path, tc.body, map[string]string{"Content-Type": tc.ctype, "Content-Encoding": tc.coding})
			if r.code != tc.status {
				t.Fatalf("answered %d %s, want %d", r.code, r.body, tc.status)
			}
			if tc.code == "" {
				return
			}
			if e := r.json(t); e["code"] != tc.code || !strings.Contains(e["detail"].(string), tc.names) {
				t.Errorf("answered %s, want %s naming %s", r.body, tc.code, tc.names)
			}
			if tc.coding != "" && r.header.Get("Accept-Encoding") != "gzip" {
				t.Errorf("a refused coding without Accept-Encoding: gzip: %q", r.header.Get("Accept-Encoding"))
			}
		})
	}
}
