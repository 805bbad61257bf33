package api

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// guardBody puts every request body under a deadline, and decides, once the
// handler is done, what becomes of the part of the body it did not read.
//
// The deadline is Config.BodyTimeout from the end of the headers (batch
// uploads extend it, see requestBody.allowRate). Without it a client that
// sends its body slowly, or not at all, holds a goroutine and a connection
// for as long as it likes; with it a read past the deadline fails, the
// answer is 408 request_timeout and the connection is closed.
//
// Full duplex is on for every body: otherwise, before writing an answer's
// header, net/http reads up to 256 KiB of a body the handler left unread,
// and a 401 waits for a bogus client's trickle.
//
// After the handler, a body read to its end needs nothing more. A partner's
// (an authenticated request's) gets the lingering close of drain. Any other
// (no key or a bad one, an unknown route or method, a route that takes no
// body) and one that ran out of time get the answer with Connection: close,
// and nothing waits for the rest of the body.
//
// A body read to its end costs two allocations (the wrapper and a shallow
// copy of the request) and two deadline changes, and no flush
// (BenchmarkGuardBodyReadToEnd).
func (s *Server) guardBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength == 0 { // no body; -1 means one of unknown length
			return next(c)
		}
		rc := http.NewResponseController(c.Response())
		// An HTTP/1 setting; there is nothing to turn off on other protocols.
		_ = rc.EnableFullDuplex()
		body := &requestBody{ReadCloser: req.Body, rc: rc, start: time.Now(), timeout: s.cfg.BodyTimeout}
		_ = rc.SetReadDeadline(body.deadline())
		r := req.WithContext(req.Context())
		r.Body = body
		c.SetRequest(r)
		err := next(c)
		if err != nil && body.fault != nil {
			err = body.fault // what the handler made of the failed read
		}
		switch {
		case body.done(req.ContentLength):
			return err
		case tenantOf(c) != "" && !body.timedOut():
			return s.drain(c, body, err)
		}
		hangUp(c.Response(), rc)
		return err
	}
}

// drain makes sure the answer to a partner's request whose body the handler
// did not read to the end (a 413, or an error found before the body
// mattered) reaches clients that write the whole body before they read
// anything. Python's http.client, urllib and requests all do that. Without
// the drain, the connection is closed with the client's data still unread,
// the kernel sends a reset, and the client never reads the answer. So, like
// nginx's lingering close, it writes the answer (err, if the handler
// returned one), flushes it, and reads and throws away the rest of the
// body, within Config.DrainMaxBytes and Config.DrainTimeout. When the drain
// stops short of the end, the connection is closed.
func (s *Server) drain(c echo.Context, body *requestBody, err error) error {
	req, res := c.Request(), c.Response()
	if !body.asked && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// The client waits for 100 Continue before it sends the body. It
		// will not get one, so there is nothing to drain, and net/http
		// closes the connection.
		return err
	}
	most := s.drainMax(c)
	over := req.ContentLength > 0 && req.ContentLength-body.n > most
	if over {
		closeAfterReply(res) // before the answer is written, so its header says Connection: close
	}
	if err != nil {
		c.Error(err)
	}
	if over {
		return nil
	}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	rc := body.rc
	if rc.SetReadDeadline(deadline) != nil || rc.SetWriteDeadline(deadline) != nil || rc.Flush() != nil {
		closeAfterReply(res)
		return nil
	}
	// Anything but the end of the body within the bound (more data, the
	// deadline, a client gone, broken chunking) means the rest cannot be
	// skipped, and must not be parsed as the next request. The read
	// bypasses the wrapper: the drain has its own deadline.
	if _, err := io.CopyN(io.Discard, body.ReadCloser, most+1); err != io.EOF {
		closeAfterReply(res)
	}
	return nil
}

// rateLimitedDrainBytes bounds the drain after a 429: enough for any
// honest predict, so a partner over its limit reads its Retry-After,
// while a tenant hammering with megabyte bodies past its limit makes the
// API read none of them.
const rateLimitedDrainBytes = 64 << 10

// drainMax is how much of the rest of c's body drain may read.
func (s *Server) drainMax(c echo.Context) int64 {
	if limited, _ := c.Get(rateLimitedKey).(bool); limited {
		return min(s.cfg.DrainMaxBytes, rateLimitedDrainBytes)
	}
	return s.cfg.DrainMaxBytes
}

// hangUp closes the connection once the answer is out, without reading any
// more of the body: the read deadline, already past, makes the read with
// which net/http looks for the body's end return at once.
func hangUp(res *echo.Response, rc *http.ResponseController) {
	closeAfterReply(res)
	_ = rc.SetReadDeadline(time.Unix(1, 0))
}

// closeAfterReply makes net/http close the connection once the answer is
// out. If the header is not written yet, it also sets Connection: close.
// net/http does this when a MaxBytesReader goes over its limit, so a reader
// with a limit of 0 is sent over it here. The only other way is to hijack
// the connection, and that would cut short an answer whose length is
// unknown.
func closeAfterReply(res *echo.Response) {
	var w http.ResponseWriter = res
	for { // MaxBytesReader tells only the writer net/http created
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	_, _ = http.MaxBytesReader(w, io.NopCloser(strings.NewReader("x")), 0).Read(make([]byte, 1))
}
