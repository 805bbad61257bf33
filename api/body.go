package api

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

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

// gzipRatioAfter is how much of a gzip body is decompressed before its
// ratio is checked: short bodies compress far better than long ones, and a
// MiB threatens nothing.
const gzipRatioAfter = 1 << 20

// content is what a handler reads of the request's body: the body itself,
// or, with Content-Encoding: gzip, the body decompressed as it is read.
// Handlers bound what they read of it as they bound a body sent as is, so
// limits apply to the decompressed bytes. Another coding is refused with
// 415 and Accept-Encoding: gzip (RFC 9110, 15.5.16).
func (s *Server) content(c echo.Context) (io.Reader, error) {
	req, body := c.Request(), bodyOf(c)
	coding := contentCoding(req.Header.Values(echo.HeaderContentEncoding))
	switch {
	case coding != "" && coding != "gzip" && coding != "x-gzip":
		c.Response().Header().Set(echo.HeaderAcceptEncoding, "gzip")
		return nil, errorf(CodeUnsupportedMedia, "Content-Encoding %q is not supported; send the body as is or gzip-compressed.", coding)
	case coding == "" || body == nil: // an empty body has nothing to decompress
		return req.Body, nil
	}
	return &gunzipBody{body: body, ratio: s.cfg.GzipMaxRatio}, nil
}

// contentCoding is the body's content coding, in lower case: "" for none
// (identity), and codings applied over one another joined with commas.
func contentCoding(values []string) string {
	var codings []string
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	return strings.Join(codings, ", ")
}

// gunzipBody decompresses a gzip body as it is read. Past its first
// gzipRatioAfter bytes, it refuses (413) a body that expands more than
// ratio-fold: the byte limits alone would let a small upload (a gzip bomb)
// make the API read and store as much as the largest batch.
type gunzipBody struct {
	body  *requestBody
	zr    *gzip.Reader
	out   int64
	ratio int64
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.body)
		if err != nil {
			return 0, g.corrupt(err)
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	g.out += int64(n)
	switch {
	case g.out > gzipRatioAfter && g.out > g.ratio*g.body.n:
		g.body.fail(errorf(CodeTooLarge, "The gzip body expands more than %d-fold; send it uncompressed, or split it.", g.ratio))
		return n, g.body.fault
	case err != nil && err != io.EOF:
		return n, g.corrupt(err)
	}
	return n, err
}

// corrupt records a body that is not gzip; a failure of the body itself
// (its deadline) was recorded first, and stays.
func (g *gunzipBody) corrupt(err error) error {
	g.body.fail(errorf(CodeBadRequest, "The body is not valid gzip: %v.", err))
	return g.body.fault
}

// checkCharset refuses a body declared in a charset other than UTF-8 (or
// its subset US-ASCII): bodies are read as UTF-8, and anything else would
// be scored as other text than the partner sent.
func checkCharset(params map[string]string) error {
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return errorf(CodeUnsupportedMedia, "The body must be UTF-8, not %q; re-encode it, or leave the charset out.", cs)
	}
	return nil
}

// utf8Error is the 400 of JSON text b that is not valid UTF-8 (RFC 8259
// requires it): encoding/json would read its bad bytes as U+FFFD, and
// score text the partner did not send. what names b in the sentence.
func utf8Error(b []byte, what string) error {
	at := 0
	for at < len(b) {
		r, size := utf8.DecodeRune(b[at:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		at += size
	}
	return errorf(CodeBadRequest, "%s is not valid UTF-8 (byte %d); JSON must be UTF-8.", what, at)
}
