package stacktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
)

// write sends raw bytes on the connection.
func (p *pyConn) write(s string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(s)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// checkError checks an answer is the JSON error code with status, carrying
// the request id of its X-Request-ID header.
func checkError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e map[string]any
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		json.Unmarshal(body, &e) != nil || e["code"] != code || e["detail"] == "" ||
		e["request_id"] == "" || e["request_id"] != resp.Header.Get("X-Request-ID") {
		t.Fatalf("answer %d %q %s, want %d with the JSON error %s and its request id", resp.StatusCode,
			resp.Header.Get("Content-Type"), body, status, code)
	}
}

// hungUp checks the server closed the connection after its answer.
func (p *pyConn) hungUp() {
	p.t.Helper()
	if _, err := p.br.ReadByte(); !closed(err) {
		p.t.Fatalf("after the answer the connection stayed open (%v); want it closed", err)
	}
}

// A request that is not a partner's (no key or a bogus one, a bad admin
// token, an unknown route or method, a route that takes no body) and
// announces a body is answered before any of the body is sent, and the
// connection is closed: nothing waits for the body. The body timeout is an
// hour, so an answer that came only when it ran out would not come within
// the connection's guard.
func TestEdgeUnauthenticatedBodyNotAwaited(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{BodyTimeout: time.Hour, AdminToken: adminToken}})
	for _, tc := range []struct {
		name, head string
		status     int
		code       string
	}{
		{"bogus key", "POST /api/v1/models/21/predict HTTP/1.1\r\nX-API-Key: hk_bogus\r\nContent-Type: application/json", 401, "unauthorized"},
		{"no key, batch", "POST /api/v1/models/21/batches HTTP/1.1\r\nContent-Type: text/csv", 401, "unauthorized"},
		{"bad admin token", "POST /ops/queues/api/queues/default:sync:pause HTTP/1.1\r\nAuthorization: Bearer nope", 401, "unauthorized"},
		{"unknown route", "POST /api/v1/nowhere HTTP/1.1\r\nX-API-Key: " + s.key, 404, "not_found"},
		{"wrong method", "PUT /api/v1/models/21/predict HTTP/1.1\r\nX-API-Key: " + s.key, 405, "method_not_allowed"},
		{"no body taken", "GET /health HTTP/1.1", 200, ""},
		{"no body taken, long answer", "GET /openapi.json HTTP/1.1", 200, ""}, // its header goes out while the handler runs
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.dialPy(t)
			p.write(tc.head + "\r\nHost: hokusai\r\nContent-Length: 100000\r\n\r\n")
			resp, body, err := p.read()
			if err != nil {
				t.Fatalf("no answer while the body was still to come: %v", err)
			}
			if tc.code != "" {
				checkError(t, resp, body, tc.status, tc.code)
				if !resp.Close {
					t.Error("the answer does not say Connection: close")
				}
			} else if resp.StatusCode != tc.status {
				t.Fatalf("answer %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			p.hungUp()
		})
	}
}

// A partner's body that stops coming gets 408 request_timeout once the body
// timeout has passed, and the connection is closed: predicts and batches,
// with a Content-Length or chunked.
func TestTimeoutStalledBody(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{BodyTimeout: 200 * time.Millisecond}})
	part := []byte(`{"inputs": ` + lead)
	for _, tc := range []struct {
		name, path, ctype string
		chunked           bool
	}{
		{"predict", "/api/v1/models/21/predict", "application/json", false},
		{"predict chunked", "/api/v1/models/21/predict", "application/json", true},
		{"batch", "/api/v1/models/21/batches", "application/x-ndjson", false},
		{"batch chunked", "/api/v1/models/21/batches", "application/x-ndjson", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.dialPy(t)
			if err := p.send(tc.path, tc.ctype, nil, part, 4096, tc.chunked, false); err != nil {
				t.Fatal(err)
			}
			resp, body, err := p.read()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			checkError(t, resp, body, http.StatusRequestTimeout, "request_timeout")
			if !resp.Close {
				t.Error("the 408 does not say Connection: close")
			}
			p.hungUp()
		})
	}
}

// trickle writes the request head, then body, piece bytes every gap,
// until it is all sent or the server stops taking it.
func (p *pyConn) trickle(head string, body []byte, piece int, gap time.Duration) {
	p.write(head)
	go func() {
		for rest := body; len(rest) > 0; rest = rest[min(piece, len(rest)):] {
			time.Sleep(gap)
			if _, err := p.conn.Write(rest[:min(piece, len(rest))]); err != nil {
				return
			}
		}
	}()
}

// A body that keeps coming, a byte at a time, still has to be in within the
// body timeout: the deadline is on the whole body, not on the gaps in it.
func TestTimeoutTrickledBody(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{BodyTimeout: 300 * time.Millisecond}})
	body := []byte(`{"inputs": ` + lead + `}`) // a few hundred bytes: seconds at a byte per 10 ms
	p := s.dialPy(t)
	p.trickle(fmt.Sprintf("POST /api/v1/models/21/predict HTTP/1.1\r\nHost: hokusai\r\nX-API-Key: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.key, len(body)), body, 1, 10*time.Millisecond)
	resp, answer, err := p.read()
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	checkError(t, resp, answer, http.StatusRequestTimeout, "request_timeout")
	p.hungUp()
}

// A batch upload may take longer than the body timeout while it averages
// the minimum upload rate, and gets its 408 when it falls below it.
func TestTimeoutBatchMinUploadRate(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{BodyTimeout: 300 * time.Millisecond,
		Batch: api.BatchConfig{MinUploadRate: 1 << 10}}})
	csv := leadsCSV(t, 200, nil) // about 20 KiB
	upload := func(t *testing.T, piece int, gap time.Duration) *pyConn {
		p := s.dialPy(t)
		p.trickle(fmt.Sprintf("POST /api/v1/models/21/batches HTTP/1.1\r\nHost: hokusai\r\nX-API-Key: %s\r\n"+
			"Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n", s.key, len(csv)), csv, piece, gap)
		return p
	}
	t.Run("above the rate", func(t *testing.T) {
		p := upload(t, 2<<10, 100*time.Millisecond) // 20 KiB/s, for about a second
		resp, body, err := p.read()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("answer %v %v %s, want 202", err, resp, body)
		}
		var b struct{ Rows int }
		if json.Unmarshal(body, &b) != nil || b.Rows != 200 {
			t.Fatalf("accepted %s, want 200 rows", body)
		}
	})
	t.Run("below the rate", func(t *testing.T) {
		p := upload(t, 50, 100*time.Millisecond) // 500 bytes/s
		resp, body, err := p.read()
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		checkError(t, resp, body, http.StatusRequestTimeout, "request_timeout")
		p.hungUp()
	})
}

// What net/http refuses itself, before any handler runs, is answered with
// the API's JSON errors too, and the connection is closed.
func TestEdgeMalformedRequestsJSON(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true})
	for _, tc := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"bad escape in the path", "GET /api/v1/models/%zz/info HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request"},
		{"request line", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"header line", "GET /health HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", 400, "bad_request"},
		{"no Host", "GET /health HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"control character in a header", "GET /health HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n", 400, "bad_request"},
		{"Content-Length", "POST /api/v1/models/21/predict HTTP/1.1\r\nHost: h\r\nContent-Length: ten\r\n\r\n", 400, "bad_request"},
		{"headers over the limit", "GET /health HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("x", 1<<20+8<<10) + "\r\n\r\n",
			431, "header_too_large"},
		{"transfer coding", "POST /api/v1/models/21/predict HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported_transfer_encoding"},
		{"HTTP/2.0 on HTTP/1", "GET /health HTTP/2.0\r\nHost: h\r\n\r\n", 505, "unsupported_http_version"},
		{"Expect", "GET /health HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n", 417, "expectation_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.dialPy(t)
			go func() { _, _ = p.conn.Write([]byte(tc.request)) }() // the server may answer before it has read it all
			resp, body, err := p.read()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			checkError(t, resp, body, tc.status, tc.code)
			if !resp.Close {
				t.Error("the answer does not say Connection: close")
			}
			p.hungUp()
		})
	}
}
