package api

import "testing"

// Only net/http's own answers are taken for errors to rewrite: an answer
// a handler wrote, whatever its status or body, passes through.
func TestServerErrorRecognisesOnlyNetHTTPs(t *testing.T) {
	for _, tc := range []struct {
		written, code, reason string
	}{
		{"HTTP/1.1 400 Bad Request" + plainHeaders + "400 Bad Request", CodeBadRequest, ""},
		{"HTTP/1.1 400 Bad Request: missing required Host header" + plainHeaders + "400 Bad Request: missing required Host header",
			CodeBadRequest, "missing required Host header"},
		{"HTTP/1.1 501 Not Implemented" + plainHeaders + "Unsupported transfer encoding", CodeUnsupportedTransfer, ""},
		{"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Thu, 03 Dec 2026 13:33:56 GMT\r\nContent-Length: 0\r\n\r\n",
			CodeExpectationFailed, ""},
		{"HTTP/1.1 418 I'm a teapot" + plainHeaders + "418 I'm a teapot", "", ""}, // a status net/http does not give
		{"HTTP/1.1 400 Bad Request\r\nContent-Length: 15\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Thu, 03 Dec 2026 13:33:56 GMT\r\n" +
			"X-Request-Id: 1\r\n\r\n400 Bad Request", "", ""},
		{"HTTP/1.1 400 Bad Request" + plainHeaders + "a body that is not the status line", "", ""},
		{"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 2\r\nX-Request-Id: 1\r\n\r\n{}", "", ""},
		{"lead_score,HTTP/1.1 400 Bad Request" + plainHeaders, "", ""},
	} {
		e, reason := serverError([]byte(tc.written))
		code := ""
		if e != nil {
			code = e.Code
		}
		if code != tc.code || reason != tc.reason {
			t.Errorf("%q: %q %q, want %q %q", tc.written, code, reason, tc.code, tc.reason)
		}
	}
}
