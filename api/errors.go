package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Error codes, stable for clients.
const (
	CodeBadRequest        = "bad_request"
	CodeInvalidInput      = "invalid_input"
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeNotFound          = "not_found"
	CodeModelNotFound     = "model_not_found"
	CodeJobNotFound       = "job_not_found"
	CodeBatchNotFound     = "batch_not_found"
	CodeScheduleNotFound  = "schedule_not_found"
	CodeAssetNotFound     = "asset_not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeTooLarge          = "payload_too_large"
	CodeUnsupportedMedia  = "unsupported_media_type"
	CodeNoReadyWorker     = "no_ready_worker"
	CodeQueueUnavailable  = "queue_unavailable"
	CodeQueueFull         = "queue_full"
	CodeTimeout           = "timeout"
	CodeRequestTimeout    = "request_timeout"
	CodeConflict          = "conflict"
	CodeRateLimited       = "rate_limited"
	CodeInternal          = "internal"
	headerRequestID       = "X-Request-ID"
	headerRetryAfter      = "Retry-After"
	retryAfterNoWorker    = "5"
	retryAfterUnavailable = "2"
)

// Codes of the answers net/http gives itself, before any handler runs
// (malformed.go).
const (
	CodeHeaderTooLarge      = "header_too_large"
	CodeUnsupportedTransfer = "unsupported_transfer_encoding"
	CodeUnsupportedVersion  = "unsupported_http_version"
	CodeExpectationFailed   = "expectation_failed"
)

// statusOf is the one table from code to HTTP status.
var statusOf = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeInvalidInput:     http.StatusUnprocessableEntity,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeForbidden:        http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeModelNotFound:    http.StatusNotFound,
	CodeJobNotFound:      http.StatusNotFound,
	CodeBatchNotFound:    http.StatusNotFound,
	CodeScheduleNotFound: http.StatusNotFound,
	CodeAssetNotFound:    http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeNoReadyWorker:    http.StatusServiceUnavailable,
	CodeQueueUnavailable: http.StatusServiceUnavailable,
	CodeQueueFull:        http.StatusServiceUnavailable,
	CodeTimeout:          http.StatusGatewayTimeout,
	CodeRequestTimeout:   http.StatusRequestTimeout,
	CodeConflict:         http.StatusConflict,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeInternal:         http.StatusInternalServerError,

	// net/http's own answers (malformed.go)
	CodeHeaderTooLarge:      http.StatusRequestHeaderFieldsTooLarge,
	CodeUnsupportedTransfer: http.StatusNotImplemented,
	CodeUnsupportedVersion:  http.StatusHTTPVersionNotSupported,
	CodeExpectationFailed:   http.StatusExpectationFailed,
}

// Error is an API failure: a code from the table above and a sentence for
// people. Extra fields (per-field errors, request_id of a timed-out job) ride
// along in Extra.
type Error struct {
	Code   string
	Detail string
	Fields []jobs.FieldError
	Extra  map[string]any
	// RetryAfter, in seconds, is sent as Retry-After when set.
	RetryAfter string
	// Plain sends the error as the text "code: detail (request id)", for
	// the one client that cannot take JSON: the dashboard's page (ops.go).
	Plain bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// errorHandler is Echo's HTTPErrorHandler: it turns every error, ours or
// Echo's (unknown route, wrong method, body too large), into the JSON shape,
// and tells rejected its code. Only errors it does not know are logged at
// error level.
func errorHandler(log *slog.Logger, rejected func(c echo.Context, code string)) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var e *Error
		var he *echo.HTTPError
		switch {
		case errors.As(err, &e):
		case errors.As(err, &he):
			e = fromEcho(he)
		default:
			log.Error("unhandled error", "request_id", requestID(c), "path", c.Path(), "err", err.Error())
			e = errorf(CodeInternal, "Something went wrong on our side; the request id identifies it in our logs.")
		}
		status, ok := statusOf[e.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		rejected(c, e.Code)
		if e.RetryAfter != "" {
			c.Response().Header().Set(headerRetryAfter, e.RetryAfter)
		}
		body := map[string]any{"code": e.Code, "detail": e.Detail, "request_id": requestID(c)}
		if len(e.Fields) > 0 {
			body["errors"] = e.Fields
		}
		for k, v := range e.Extra {
			body[k] = v
		}
		// With a length, the answer can be flushed complete while the rest of
		// the request body is still being drained (drain.go), so a client
		// reading as it writes sees the answer's end at once; a HEAD gets
		// the headers of GET, and net/http drops the body. The body holds
		// strings and field errors only, which always encode.
		b, _ := json.Marshal(body)
		b, ctype := append(b, '\n'), echo.MIMEApplicationJSON
		if e.Plain {
			b, ctype = fmt.Appendf(nil, "%s: %s (request %s)\n", e.Code, e.Detail, requestID(c)), echo.MIMETextPlainCharsetUTF8
		}
		h := c.Response().Header()
		h.Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
		h.Set(echo.HeaderContentType, ctype) // over any a handler set before failing
		_ = c.Blob(status, ctype, b)
	}
}

func fromEcho(he *echo.HTTPError) *Error {
	switch he.Code {
	case http.StatusNotFound:
		return errorf(CodeNotFound, "No route matches this path; see /openapi.json.")
	case http.StatusMethodNotAllowed:
		return errorf(CodeMethodNotAllowed, "This path does not accept that method; see /openapi.json.")
	case http.StatusRequestEntityTooLarge:
		return errorf(CodeTooLarge, "The request body is over the limit.")
	case http.StatusUnsupportedMediaType:
		return errorf(CodeUnsupportedMedia, "Send the body as application/json.")
	case http.StatusUnauthorized:
		return errorf(CodeUnauthorized, "An API key is required.")
	case http.StatusBadRequest:
		return errorf(CodeBadRequest, "The request is malformed.")
	}
	if he.Code >= 500 {
		return errorf(CodeInternal, "Something went wrong on our side; the request id identifies it in our logs.")
	}
	return errorf(CodeBadRequest, "%s", http.StatusText(he.Code))
}
