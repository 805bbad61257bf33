package api

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// drainBody makes sure the answer to a request whose body the handler did
// not read to the end (a 413, or an error found before the body mattered)
// reaches clients that write the whole body before they read anything.
// Python's http.client, urllib and requests all do that. Without the drain,
// net/http closes the socket with the client's data still unread, the
// kernel sends a reset, and the client never reads the answer. So, like
// nginx's lingering close, the answer is flushed and the rest of the body
// is read and thrown away, within Config.DrainMaxBytes and
// Config.DrainTimeout. When the drain stops short of the end, the
// connection is closed.
//
// It runs after auth, so only partners get a drain; net/http closes
// unauthenticated requests at once. A body read to its end costs a wrapper
// and a shallow copy of the request, and no flush or syscall
// (BenchmarkDrainBodyReadToEnd).
func (s *Server) drainBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength == 0 { // no body; -1 means one of unknown length
			return next(c)
		}
		body := &watchedBody{ReadCloser: req.Body}
		r := req.WithContext(req.Context())
		r.Body = body
		c.SetRequest(r)
		err := next(c)
		if body.eof {
			return err
		}
		return s.drain(c, body, err)
	}
}

// watchedBody records what the handler did with the body: whether it asked
// for any of it (with Expect: 100-continue, that first read is what sends
// 100 Continue), how much it read, and whether it reached the end.
type watchedBody struct {
	io.ReadCloser
	asked, eof bool
	n          int64
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.asked = true
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// drain writes the answer (err, if the handler returned one), flushes it,
// and discards the rest of body within the bounds. If anything stops the
// drain before the end of the body, the connection is closed.
func (s *Server) drain(c echo.Context, body *watchedBody, err error) error {
	req, res := c.Request(), c.Response()
	if !body.asked && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// The client waits for 100 Continue before it sends the body. It
		// will not get one, so there is nothing to drain, and net/http
		// closes the connection.
		return err
	}
	rc := http.NewResponseController(res)
	// Without full duplex, net/http reads up to 256 KiB of the body
	// itself when the header goes out, then closes the connection if more
	// is left. It is an HTTP/1 setting; there is nothing to turn off on
	// other protocols.
	_ = rc.EnableFullDuplex()
	over := req.ContentLength > 0 && req.ContentLength-body.n > s.cfg.DrainMaxBytes
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
	if rc.SetReadDeadline(deadline) != nil || rc.SetWriteDeadline(deadline) != nil || rc.Flush() != nil {
		closeAfterReply(res)
		return nil
	}
	// Anything but the end of the body within the bound (more data, the
	// deadline, a client gone, broken chunking) means the rest cannot be
	// skipped, and must not be parsed as the next request.
	if _, err := io.CopyN(io.Discard, body, s.cfg.DrainMaxBytes+1); err != io.EOF {
		closeAfterReply(res)
	}
	return nil
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
