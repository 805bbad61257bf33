package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// requestBody is a request's body as handlers read it (guardBody installs
// it). It keeps the body under its deadline, and records what the handler
// did with the body and why reading it failed, when that was the body's
// fault: handlers turn any read error into their own answer ("the body
// could not be read"), and the recorded fault replaces it.
type requestBody struct {
	io.ReadCloser
	rc *http.ResponseController
	// The body must be in by start + timeout, plus a second per rate bytes
	// received when rate is set (batch uploads, see allowRate).
	start   time.Time
	timeout time.Duration
	rate    int64
	// asked: the handler read (with Expect: 100-continue, that first read
	// is what sends 100 Continue); n bytes came; eof: all of them.
	asked, eof bool
	n          int64
	fault      *Error
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.asked = true
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		// net/http clears the deadline here, as it starts watching the
		// connection for the client going away.
		b.eof = true
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.fail(b.timeoutError())
	case n > 0 && b.rate > 0:
		_ = b.rc.SetReadDeadline(b.deadline())
	}
	return n, err
}

func (b *requestBody) deadline() time.Time {
	d := b.timeout
	if b.rate > 0 {
		d += time.Duration(float64(b.n) / float64(b.rate) * float64(time.Second))
	}
	return b.start.Add(d)
}

// allowRate extends the deadline for a body that may be large: a second
// more per rate bytes received, so an upload keeps going as long as it
// averages rate bytes a second after the first timeout, and a stalled one
// still ends. b is nil when the request has no body.
func (b *requestBody) allowRate(rate int64) {
	if b == nil || rate <= 0 {
		return
	}
	b.rate = rate
	_ = b.rc.SetReadDeadline(b.deadline())
}

func (b *requestBody) timeoutError() *Error {
	if b.rate > 0 {
		return errorf(CodeRequestTimeout, "The body did not arrive in time (%s, plus a second per %d bytes received); the connection is closed.", b.timeout, b.rate)
	}
	return errorf(CodeRequestTimeout, "The body did not arrive within %s; the connection is closed.", b.timeout)
}

// fail records why reading the body failed; the first cause wins.
func (b *requestBody) fail(e *Error) {
	if b.fault == nil {
		b.fault = e
	}
}

func (b *requestBody) timedOut() bool { return b.fault != nil && b.fault.Code == CodeRequestTimeout }

// done says the whole body was read: its end seen, or all of a declared
// length.
func (b *requestBody) done(contentLength int64) bool {
	return b.eof || contentLength > 0 && b.n == contentLength
}

// bodyOf is the request's guarded body, nil when it has none.
func bodyOf(c echo.Context) *requestBody {
	b, _ := c.Request().Body.(*requestBody)
	return b
}
