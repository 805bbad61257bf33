package stacktest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/api"
)

// pyConn is a keep-alive connection used the way Python's http.client
// (and urllib and requests on top of it) uses one: it writes the request
// line, the headers and the whole body, and only then reads the answer.
type pyConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	s    *stack
}

func (s *stack) dialPy(t *testing.T) *pyConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// A guard against a hung test, not a measurement: a right server answers
	// within the drain timeout.
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	return &pyConn{t: t, conn: conn, br: bufio.NewReader(conn), s: s}
}

// send writes a POST with the stack's key. The body goes with a
// Content-Length of declared (len(body) when 0), or, when chunked, in
// 64 KiB chunks; end false leaves a chunked body unterminated.
func (p *pyConn) send(path, ctype string, extra []string, body []byte, declared int, chunked, end bool) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: hokusai\r\nX-API-Key: %s\r\nContent-Type: %s\r\n", path, p.s.key, ctype)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	switch {
	case chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 64<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		if end {
			b.WriteString("0\r\n\r\n")
		}
	default:
		if declared == 0 {
			declared = len(body)
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", declared)
		b.Write(body)
	}
	_, err := p.conn.Write(b.Bytes())
	return err
}

// read reads one answer, keeping its body for the leak checks.
func (p *pyConn) read() (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	_, _ = p.s.seen.Write(b)
	return resp, b, err
}

// exchange sends a whole request, then reads its answer.
func (p *pyConn) exchange(path, ctype string, body []byte, chunked bool) (*http.Response, []byte, error) {
	if err := p.send(path, ctype, nil, body, 0, chunked, true); err != nil {
		return nil, nil, err
	}
	return p.read()
}

// predictOK checks that the connection still serves a predict.
func (p *pyConn) predictOK() {
	p.t.Helper()
	resp, body, err := p.exchange("/api/v1/models/21/predict", "application/json", []byte(`{"inputs": `+lead+`}`), false)
	if err != nil || resp.StatusCode != http.StatusOK {
		p.t.Fatalf("the next request on the connection: %v %v %s", err, resp, body)
	}
}

// closed reports whether err says the server closed the connection, not
// that the test's guard deadline ran out while it kept it open.
func closed(err error) bool {
	var ne net.Error
	return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
}

// bigPredict is a 16 MiB predict body, over the 1 MiB default limit.
var bigPredict = []byte(`{"inputs": {"title": "` + strings.Repeat("x", 16<<20) + `"}}`)

// bigBatch is a 16 MiB CSV batch, well-formed all the way.
func bigBatch(t *testing.T) []byte {
	head, row, _ := strings.Cut(string(leadsCSV(t, 1, nil)), "\n")
	return []byte(head + "\n" + strings.Repeat(row, (16<<20)/len(row)))
}

// A body over its limit, written whole before anything is read, gets the
// 413 JSON instead of a connection reset, with a Content-Length or chunked;
// once the server has drained it, the connection serves the next request.
func TestTooLargeReachesWholeBodyWriters(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{Batch: api.BatchConfig{MaxBytes: 64 << 10}}})
	batch := bigBatch(t)
	for _, tc := range []struct {
		name, path, ctype string
		body              []byte
		chunked           bool
	}{
		{"predict", "/api/v1/models/21/predict", "application/json", bigPredict, false},
		{"predict chunked", "/api/v1/models/21/predict", "application/json", bigPredict, true},
		{"job", "/api/v1/models/21/jobs", "application/json", bigPredict, false},
		{"batch", "/api/v1/models/21/batches", "text/csv", batch, false},
		{"batch chunked", "/api/v1/models/21/batches", "text/csv", batch, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.dialPy(t)
			resp, body, err := p.exchange(tc.path, tc.ctype, tc.body, tc.chunked)
			if err != nil {
				t.Fatalf("the client never got an answer: %v", err)
			}
			checkError(t, resp, body, http.StatusRequestEntityTooLarge, "payload_too_large")
			if resp.Close {
				t.Error("the answer closes the connection, though the body fit the drain bound")
			}
			p.predictOK()
		})
	}
}

// A client that reads while it writes (curl, Go, browsers) gets the whole
// 413 before it has sent the rest of its body: the answer has a length, so
// its end does not wait for the drain. Then it sends the rest, and the
// connection goes on.
func TestTooLargeAnswerEndsBeforeDrain(t *testing.T) {
	s := startStack(t, stackOptions{})
	p := s.dialPy(t)
	sent := 64 << 10
	if err := p.send("/api/v1/models/21/predict", "application/json", nil, bigPredict[:sent], len(bigPredict), false, false); err != nil {
		t.Fatal(err)
	}
	resp, body, err := p.read()
	if err != nil {
		t.Fatalf("the answer did not end before the body did: %v", err)
	}
	checkError(t, resp, body, http.StatusRequestEntityTooLarge, "payload_too_large")
	if _, err := p.conn.Write(bigPredict[sent:]); err != nil {
		t.Fatalf("the rest of the body: %v", err)
	}
	p.predictOK()
}

// Past the drain bound the server stops reading and closes the connection:
// the exchange fails, or the answer comes and the connection takes no
// further request.
func TestDrainBoundClosesConnection(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{DrainMaxBytes: 1 << 20}})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%t", chunked), func(t *testing.T) {
			p := s.dialPy(t)
			resp, body, err := p.exchange("/api/v1/models/21/predict", "application/json", bigPredict, chunked)
			if closed(err) {
				return // closed while the client wrote or read: what the bound asks for
			}
			if err != nil {
				t.Fatal(err)
			}
			checkError(t, resp, body, http.StatusRequestEntityTooLarge, "payload_too_large")
			if _, _, err := p.exchange("/api/v1/models/21/predict", "application/json", []byte(`{"inputs": `+lead+`}`), false); !closed(err) {
				t.Fatalf("the connection was not closed after a body beyond the drain bound: %v", err)
			}
		})
	}
}

// A client that stops sending in the middle of its body gets the 413, and
// the connection is closed once the drain times out. What is left of the
// body (under the 256 KiB net/http would try to read itself) is never
// parsed as the next request.
func TestDrainTimeoutClosesConnection(t *testing.T) {
	s := startStack(t, stackOptions{api: api.Config{MaxBodyBytes: 4096, DrainTimeout: 200 * time.Millisecond}})
	part := bytes.Repeat([]byte("x"), 6<<10)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%t", chunked), func(t *testing.T) {
			p := s.dialPy(t)
			// 6 KiB sent: over the limit when chunked, and of 8 KiB declared.
			if err := p.send("/api/v1/models/21/predict", "application/json", nil, part, 8<<10, chunked, false); err != nil {
				t.Fatal(err)
			}
			resp, body, err := p.read()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			checkError(t, resp, body, http.StatusRequestEntityTooLarge, "payload_too_large")
			if _, err := p.br.ReadByte(); !closed(err) {
				t.Fatalf("after the 413 the connection stayed open (%v); want it closed", err)
			}
		})
	}
}

// A client that asked for 100 Continue, with a length over the limit, is
// refused at once (413, no 100 Continue), and the server does not wait for
// the body: the connection is closed, so a body sent anyway goes nowhere.
func TestExpectContinueRefusedUnread(t *testing.T) {
	s := startStack(t, stackOptions{})
	p := s.dialPy(t)
	err := p.send("/api/v1/models/21/predict", "application/json", []string{"Expect: 100-continue"}, nil, len(bigPredict), false, false)
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err := p.read()
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	checkError(t, resp, body, http.StatusRequestEntityTooLarge, "payload_too_large")
	if !resp.Close {
		t.Error("the 413 does not say Connection: close")
	}
	if _, err := p.conn.Write(bigPredict); !closed(err) {
		t.Fatalf("the server read a body it had refused before asking for it, or kept the connection open: %v", err)
	}
}
