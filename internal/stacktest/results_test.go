package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/redisproc"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// download is a results response read to its end, or to the error that
// cut it short.
type download struct {
	code    int
	header  http.Header
	trailer http.Header
	body    []byte
	err     error // nil only when the body ended cleanly
	proto   int   // HTTP's major version
}

// openResults starts a download of batch id's results from the API at base.
func (s *stack) openResults(c *http.Client, base, id, query string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/batches/"+id+"/results"+query, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("X-API-Key", s.key)
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("GET results: %v", err)
	}
	return resp
}

// finish reads the rest of body (after read, taken from it already) and
// closes resp.
func finish(resp *http.Response, body io.Reader, read []byte) download {
	rest, err := io.ReadAll(body)
	resp.Body.Close()
	return download{code: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: append(read, rest...), err: err,
		proto: resp.ProtoMajor}
}

// download reads a download of batch id's results from the API at base to
// its end.
func (s *stack) download(c *http.Client, base, id, query string) download {
	s.t.Helper()
	resp := s.openResults(c, base, id, query)
	d := finish(resp, resp.Body, nil)
	_, _ = s.seen.Write(d.body)
	return d
}

// checkEnd checks that a results download ended as a whole one of rows
// rows whose batch is status: in its trailers, in the rows it holds and, in
// JSONL, in its end marker.
func checkEnd(t testing.TB, d download, rows int, status string) {
	t.Helper()
	if n, st := d.trailer.Get("X-Hokusai-Rows"), d.trailer.Get("X-Hokusai-Status"); n != strconv.Itoa(rows) || st != status {
		t.Errorf("trailers X-Hokusai-Rows %q, X-Hokusai-Status %q; want %d, %s", n, st, rows, status)
	}
	if strings.HasPrefix(d.header.Get("Content-Type"), "text/csv") {
		recs, err := csv.NewReader(bytes.NewReader(d.body)).ReadAll()
		if err != nil || len(recs) != rows+1 {
			t.Errorf("the CSV holds %d records (err %v), want a header and %d rows", len(recs), err, rows)
		}
		return
	}
	lines := bytes.Split(bytes.TrimSuffix(d.body, []byte("\n")), []byte("\n"))
	want := fmt.Sprintf(`{"end":true,"rows":%d,"status":%q}`, rows, status)
	if got := string(lines[len(lines)-1]); got != want || len(lines) != rows+1 {
		t.Errorf("JSONL of %d lines ends %s; want %d rows and %s", len(lines), got, rows, want)
	}
}

// checkCut checks that a results download was broken off after its header:
// a read error, not a clean end, and neither trailers nor an end marker.
func checkCut(t testing.TB, d download) {
	t.Helper()
	if d.code != http.StatusOK {
		t.Fatalf("answered %d before any row: %s", d.code, d.body)
	}
	if d.err == nil {
		t.Errorf("the body of %d bytes ended cleanly; want a read error", len(d.body))
	}
	if d.trailer.Get("X-Hokusai-Rows") != "" || d.trailer.Get("X-Hokusai-Status") != "" || bytes.Contains(d.body, []byte(`"end":true`)) {
		t.Errorf("a cut download has trailers %v or an end marker", d.trailer)
	}
}

// cutLogs returns the API's "batch results cut short" log lines.
func (s *stack) cutLogs() []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(s.logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "batch results cut short" {
			out = append(out, m)
		}
	}
	return out
}

// stalledBatch submits a batch of rows leads whose chunk at is never
// scored (its input is deleted before a worker starts on the Redis at url),
// so a wait=true download streams the chunks before it, then waits.
func (s *stack) stalledBatch(url string, rows, at int) string {
	s.t.Helper()
	id := s.queueBatch(url, rows)
	if err := s.rdb.Del(context.Background(), jobs.BatchInKey(id, at)).Err(); err != nil {
		s.t.Fatal(err)
	}
	s.startWorker(url, worker.Config{})
	return id
}

// smallBuffers serves the stack's API on another listener whose
// connections have a small fixed send buffer, and returns its URL with a
// client whose connections have a small fixed receive buffer. The API can
// then run ahead of what the client has read by its own 256 KiB buffer and
// a few dozen KiB more, whatever the kernel's autotuning would allow.
func (s *stack) smallBuffers() (string, *http.Client) {
	s.t.Helper()
	sockopt := func(opt int) func(string, string, syscall.RawConn) error {
		return func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 16<<10) }); cerr != nil {
				return cerr
			}
			return err
		}
	}
	lc := net.ListenConfig{Control: sockopt(syscall.SO_SNDBUF)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	hs := &http.Server{Handler: s.api.Handler()}
	go func() { _ = hs.Serve(ln) }()
	s.t.Cleanup(func() { _ = hs.Close() })
	d := &net.Dialer{Control: sockopt(syscall.SO_RCVBUF)}
	return "http://" + ln.Addr().String(), &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// Redis dies in the middle of a download: the client's read fails, with
// neither trailers nor an end marker, and the API logs it once. While the
// batch runs (wait=true) the stream is waiting for a chunk that will never
// come; once it is done, the API has rows left to read from Redis because
// the small socket buffers stop it from running far ahead of the client.
func TestBatchResultsRedisKilled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		// prepare returns a batch whose download will need Redis again
		// after its first row.
		prepare func(s *stack, url string) string
		// reached is how many rows the client gets when that is known: all
		// of chunk 0 while the batch waits for chunk 1. Either way, not all.
		reached int
	}{
		{"while it runs", "?format=jsonl&wait=true", func(s *stack, url string) string {
			return s.stalledBatch(url, 100, 1)
		}, 64},
		{"once done", "?format=jsonl", func(s *stack, url string) string {
			s.startWorker(url, worker.Config{})
			s.waitReady("21")
			id := s.acceptedBatch(s.submitBatch(leadsCSV(s.t, 5000, nil), "text/csv", "", nil))
			s.waitBatch(id, 60*time.Second)
			return id
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own, err := redisproc.Start(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(own.Stop)
			s := startStack(t, stackOptions{redisURL: own.URL, noWorker: true, api: smallChunks.api})
			id := tc.prepare(s, own.URL)
			base, c := s.smallBuffers()
			resp := s.openResults(c, base, id, tc.query)
			br := bufio.NewReader(resp.Body)
			first, err := br.ReadBytes('\n')
			if err != nil {
				t.Fatalf("no first row: %v", err)
			}
			own.Stop()
			d := finish(resp, br, first)
			checkCut(t, d)
			got := bytes.Count(d.body, []byte("\n"))
			if tc.reached != 0 && got != tc.reached || got >= 5000 {
				t.Errorf("%d rows reached the client, want %d", got, tc.reached)
			}
			cuts := s.cutLogs()
			if len(cuts) != 1 || cuts[0]["batch_id"] != id || cuts[0]["header_sent"] != true ||
				!strings.Contains(fmt.Sprint(cuts[0]["err"]), "redis unreachable") {
				t.Fatalf("cut-short log lines %v; logs:\n%s", cuts, s.logs)
			}
			if n, _ := cuts[0]["rows_written"].(float64); int(n) < got {
				t.Errorf("logged %v rows written, the client read more", cuts[0]["rows_written"])
			}
			// The access log line follows the handler's return, which may
			// come after the client saw the connection cut.
			eventually(t, 10*time.Second, func() bool { return strings.Contains(s.logs.String(), `"error_code":"results_aborted"`) },
				"the access log does not mark the request aborted:\n%s", s.logs)
		})
	}
}

// A whole download, CSV and JSONL, streamed while the batch runs
// (wait=true) and once it is done, ends with its trailers (and JSONL with
// its end marker) giving every row and the batch's status.
func TestBatchResultsComplete(t *testing.T) {
	s := startStack(t, smallChunks)
	bad := map[int]bool{130: true}
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 1000, bad), "text/csv", "", nil))
	streams := map[string]*http.Response{}
	for _, f := range []string{"csv", "jsonl"} {
		streams[f] = s.openResults(client, s.url, id, "?wait=true&format="+f)
	}
	b := s.waitBatch(id, 30*time.Second)
	if b.Status != jobs.BatchPartiallyFailed {
		t.Fatalf("status %+v", b)
	}
	for f, resp := range streams {
		t.Run(f+" while it runs", func(t *testing.T) {
			d := finish(resp, resp.Body, nil)
			if d.code != http.StatusOK || d.err != nil {
				t.Fatalf("answered %d, read error %v: %.200s", d.code, d.err, d.body)
			}
			checkEnd(t, d, 1000, b.Status)
			if f == "csv" {
				checkCSVResults(t, d.body, 1000, bad)
			}
		})
	}
	for _, f := range []string{"csv", "jsonl"} {
		t.Run(f+" once done", func(t *testing.T) {
			s.results(id, f) // checks the end
		})
	}
}

// Canceling a batch while its results stream (wait=true) ends the stream
// cleanly after the rows scored before the cancel, marked canceled in the
// trailers and the end marker: neither a failure nor a whole batch.
func TestBatchResultsCanceled(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true, api: smallChunks.api})
	id := s.stalledBatch(srv.URL, 100, 1)
	var streams []func() download
	for _, f := range []string{"csv", "jsonl"} {
		resp := s.openResults(client, s.url, id, "?wait=true&format="+f)
		br := bufio.NewReader(resp.Body)
		// It comes with chunk 0's rows, after which the stream waits.
		first, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s: no first line: %v", f, err)
		}
		streams = append(streams, func() download { return finish(resp, br, first) })
	}
	if r := s.do("DELETE", "/api/v1/batches/"+id, nil, nil); r.code != http.StatusOK {
		t.Fatalf("cancel answered %d %s", r.code, r.body)
	}
	for _, rest := range streams {
		d := rest()
		if d.code != http.StatusOK || d.err != nil {
			t.Fatalf("answered %d, read error %v: %.200s", d.code, d.err, d.body)
		}
		checkEnd(t, d, 64, jobs.BatchCanceled)
	}
	if cuts := s.cutLogs(); len(cuts) != 0 {
		t.Errorf("a cancel was logged as a cut-short download: %v", cuts)
	}
}

// Results of a chunk that cannot be rendered, or that do not add up to the
// batch's rows, break the download off once its header is out, over
// HTTP/1.1 and HTTP/2 alike; before that, the answer is a JSON 500.
func TestBatchResultsBrokenChunk(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{Batch: api.BatchConfig{ChunkRows: 1024}}})
	id := s.acceptedBatch(s.submitBatch(leadsCSV(t, 10_000, nil), "text/csv", "", nil))
	s.waitBatch(id, 60*time.Second)
	ctx := t.Context()
	chunk0, err := s.rdb.Get(ctx, jobs.BatchOutKey(id, 0)).Result()
	if err != nil {
		t.Fatal(err)
	}
	h2 := httptest.NewUnstartedServer(s.api.Handler())
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	// Chunks 0-8 (9,216 rows) overflow the API's 256 KiB buffer, so its
	// header is out when chunk 9 (the last, 784 rows) is read.
	for _, tc := range []struct {
		name   string
		chunk  int
		blob   string
		base   string
		client *http.Client
		proto  int
	}{
		{"unreadable", 9, "not a chunk", s.url, client, 1},
		{"another chunk's rows", 9, chunk0, s.url, client, 1},
		{"unreadable over HTTP/2", 9, "not a chunk", h2.URL, h2.Client(), 2},
		{"unreadable before the header", 0, "not a chunk", s.url, client, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := jobs.BatchOutKey(id, tc.chunk)
			orig, err := s.rdb.Get(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.rdb.Set(ctx, key, tc.blob, redis.KeepTTL).Err(); err != nil {
				t.Fatal(err)
			}
			defer s.rdb.Set(ctx, key, orig, redis.KeepTTL)
			before := len(s.cutLogs())
			d := s.download(tc.client, tc.base, id, "?format=csv")
			if d.proto != tc.proto {
				t.Fatalf("HTTP/%d, want HTTP/%d", d.proto, tc.proto)
			}
			if tc.chunk > 0 {
				checkCut(t, d)
			} else {
				var e struct {
					Code      string `json:"code"`
					RequestID string `json:"request_id"`
				}
				if json.Unmarshal(d.body, &e) != nil || d.code != http.StatusInternalServerError || e.Code != "internal" ||
					e.RequestID == "" || d.header.Get("Trailer") != "" {
					t.Errorf("answered %d, Trailer %q: %s", d.code, d.header.Get("Trailer"), d.body)
				}
			}
			if n := len(s.cutLogs()) - before; n != 1 {
				t.Errorf("%d cut-short log lines, want 1; logs:\n%s", n, s.logs)
			}
		})
	}
}
