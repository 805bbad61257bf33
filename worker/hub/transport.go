package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const maxRedirects = 10

// errStalled is the cancel cause of a request that made no progress for
// RequestTimeout.
var errStalled = errors.New("no progress within the request timeout")

// retryable marks an attempt's failure as worth another try.
type retryable struct {
	err   error
	after time.Duration // the server's Retry-After, 0 if none
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// do sends method to rawURL with retries. handle reads a successful (< 400)
// response inside the attempt, so the request timeout covers the body too; it
// may return a *retryable to ask for another attempt. followCrossHost says
// whether redirects to other hosts are followed (downloads) or returned to
// handle (HEAD, whose cross-host Location is the CDN URL).
func (c *Client) do(ctx context.Context, method, rawURL string, followCrossHost bool, handle func(*http.Response) error) error {
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, method, rawURL, followCrossHost, handle)
		var r *retryable
		if !errors.As(err, &r) {
			return err
		}
		if attempt >= c.opts.MaxAttempts {
			return r.err
		}
		if serr := c.sleep(ctx, max(c.backoff(attempt), r.after)); serr != nil {
			return fmt.Errorf("%w (while retrying after: %w)", serr, r.err)
		}
	}
}

// backoff is the exponential delay before retry number attempt (1-based),
// jittered into [d/2, d).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.MinBackoff << min(attempt-1, 30)
	if d <= 0 || d > c.opts.MaxBackoff {
		d = c.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) attempt(ctx context.Context, method, rawURL string, followCrossHost bool, handle func(*http.Response) error) error {
	tok := ""
	if c.opts.Token != nil {
		var err error
		if tok, err = c.opts.Token(ctx); err != nil {
			return fmt.Errorf("get HF token: %w", err)
		}
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(c.opts.RequestTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	resp, err := c.roundTrip(actx, method, rawURL, tok, followCrossHost)
	if err != nil {
		return c.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	resp.Body = &progressBody{ReadCloser: resp.Body, progress: func() { stall.Reset(c.opts.RequestTimeout) }}

	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &retryable{err: newHTTPError(resp, tok), after: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode >= 400:
		return newHTTPError(resp, tok)
	}
	if err := handle(resp); err != nil {
		if actx.Err() != nil {
			return c.transportError(ctx, actx, err)
		}
		return err
	}
	return nil
}

// transportError classifies a failure without an HTTP answer: the caller's
// own cancellation is final; a stall or a network error is retried.
func (c *Client) transportError(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(context.Cause(actx), errStalled) {
		err = errStalled
	}
	return &retryable{err: fmt.Errorf("%w: %w", ErrUnreachable, err)}
}

// roundTrip sends one request, following redirects on the same host (renamed
// repos) and, if followCrossHost, to other hosts. The token is only ever sent
// to the endpoint's host.
func (c *Client) roundTrip(ctx context.Context, method, rawURL, tok string, followCrossHost bool) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	for range maxRedirects {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", c.opts.UserAgent)
		// Sizes and sha256 are of the raw bytes; no transparent gzip.
		req.Header.Set("Accept-Encoding", "identity")
		if tok != "" && c.onEndpointHost(u) {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		loc, err := resp.Location()
		if !isRedirect(resp.StatusCode) || err != nil {
			return resp, nil
		}
		sameHost := loc.Scheme == u.Scheme && loc.Host == u.Host
		if !sameHost && !followCrossHost {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		u = loc
	}
	return nil, fmt.Errorf("%s %s: more than %d redirects", method, stripQuery(rawURL), maxRedirects)
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// retryAfter parses delay-seconds or an HTTP date; 0 when absent or past.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// newHTTPError reads the Hub's error details; tok is scrubbed from the
// message in case a server echoes it.
func newHTTPError(resp *http.Response, tok string) *HTTPError {
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		var body struct {
			Error string `json:"error"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil {
			msg = body.Error
		}
	}
	if tok != "" {
		msg = strings.ReplaceAll(msg, tok, "[REDACTED]")
	}
	code := resp.Header.Get("X-Error-Code")
	return &HTTPError{
		Method:     resp.Request.Method,
		URL:        stripQuery(resp.Request.URL.String()),
		StatusCode: resp.StatusCode,
		Code:       code,
		Message:    msg,
		RequestID:  resp.Header.Get("X-Request-Id"),
		kind:       errorKind(resp.StatusCode, code, msg, resp.Request.URL.Path),
	}
}

func stripQuery(raw string) string {
	before, _, _ := strings.Cut(raw, "?")
	return before
}

// progressBody calls progress on every read that returns bytes, and marks a
// broken body (a connection dropped mid-transfer) as retryable.
type progressBody struct {
	io.ReadCloser
	progress func()
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.progress()
	}
	if err != nil && err != io.EOF {
		err = &retryable{err: fmt.Errorf("%w: read body: %w", ErrUnreachable, err)}
	}
	return n, err
}
