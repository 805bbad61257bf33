package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// plainHeaders follows the status line of every answer net/http writes
// itself; the body repeats the status line, but for the 501.
const plainHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// serverErrors are net/http's own answers, by status, as the API's errors.
// An answer with a status not listed goes out as net/http wrote it.
var serverErrors = map[int]*Error{
	http.StatusBadRequest: {Code: CodeBadRequest,
		Detail: "The request line or a header is malformed (a bad %-escape in the path, say); the request was not read."},
	http.StatusRequestHeaderFieldsTooLarge: {Code: CodeHeaderTooLarge,
		Detail: "The request's headers are over the 1 MiB limit; the request was not read."},
	http.StatusNotImplemented: {Code: CodeUnsupportedTransfer,
		Detail: "The Transfer-Encoding is not supported; send the body chunked or with a Content-Length."},
	http.StatusHTTPVersionNotSupported: {Code: CodeUnsupportedVersion,
		Detail: "This port serves HTTP/1.0 and HTTP/1.1."},
	http.StatusExpectationFailed: {Code: CodeExpectationFailed,
		Detail: "The only Expect supported is 100-continue."},
}

// jsonErrorListener makes net/http's own error answers JSON. net/http
// answers some requests itself, before any handler runs: a request line,
// header or URL it cannot parse (a bad %-escape in the path among them),
// headers over its 1 MiB limit, a transfer coding it does not know, an HTTP
// version it does not serve, an Expect other than 100-continue. It writes
// those answers straight to the connection, as text. The connections this
// listener hands net/http recognise them as they are written and write the
// API's JSON error in their place: same status, a code of the table, a
// request id, Connection: close (net/http closes the connection after
// them). Requests net/http drops without a word (a header timeout, a client
// gone) stay unanswered.
type jsonErrorListener struct {
	net.Listener
	s *Server
}

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c, s: l.s}, nil
}

type jsonErrorConn struct {
	net.Conn
	s *Server
}

// Write passes everything through but net/http's own error answers, which
// it always writes whole, in one call.
func (c *jsonErrorConn) Write(p []byte) (int, error) {
	e, reason := serverError(p)
	if e == nil {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(c.s.serverErrorAnswer(e, reason)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite keeps net/http's close after a 431: a FIN, a pause for the
// client to read the answer, then the close.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// serverError recognises an answer net/http wrote itself, and returns its
// error and the reason net/http gave on the status line ("missing required
// Host header"), if any. Handlers' answers never match: they always carry
// X-Request-ID and Date.
func serverError(p []byte) (*Error, string) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	eol := bytes.IndexByte(rest, '\r')
	if !ok || eol < 4 {
		return nil, ""
	}
	line, after := rest[:eol], rest[eol:]
	switch body, plain := bytes.CutPrefix(after, []byte(plainHeaders)); {
	case plain && (bytes.Equal(body, line) || string(line) == "501 Not Implemented" && string(body) == "Unsupported transfer encoding"):
	case string(line) == "417 Expectation Failed" && bytes.HasSuffix(after, []byte("\r\nContent-Length: 0\r\n\r\n")):
		// written through a response: its headers, no body
	default:
		return nil, ""
	}
	status, err := strconv.Atoi(string(line[:3]))
	if err != nil {
		return nil, ""
	}
	_, reason, _ := strings.Cut(string(line), ": ")
	return serverErrors[status], reason
}

// serverErrorAnswer is the whole JSON answer that replaces one of
// net/http's, logged and counted as handlers' errors are.
func (s *Server) serverErrorAnswer(e *Error, reason string) []byte {
	id := jobs.NewRequestID()
	status := statusOf[e.Code]
	detail := e.Detail
	if reason != "" {
		detail = fmt.Sprintf("The request is malformed: %s; it was not read.", reason)
	}
	s.metrics.reject(e.Code)
	s.log.Info("request", "request_id", id, "status", status, "error_code", e.Code, "refused_by", "net/http")
	b, _ := json.Marshal(map[string]string{"code": e.Code, "detail": detail, "request_id": id})
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %d\r\nContent-Type: application/json\r\nDate: %s\r\n%s: %s\r\n\r\n%s\n",
		status, http.StatusText(status), len(b)+1, time.Now().UTC().Format(http.TimeFormat), headerRequestID, id, b)
}
