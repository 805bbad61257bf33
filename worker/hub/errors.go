package hub

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels for errors.Is. Hub answers wrap them in an *HTTPError.
var (
	// ErrRepoNotFound: the repo does not exist, or it is private and the
	// request's token (if any) cannot read it; the Hub does not tell which.
	ErrRepoNotFound = errors.New("repository not found or not readable with this token")
	// ErrGatedRepo: the repo is gated and the token's user has not been
	// granted access (or no token was sent).
	ErrGatedRepo = errors.New("repository is gated and access has not been granted")
	// ErrRevisionNotFound: no such branch, tag, commit or pull request ref.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the file does not exist at that revision.
	ErrEntryNotFound = errors.New("file not found in repository")
	// ErrInvalidToken: the Hub rejected the token.
	ErrInvalidToken = errors.New("HuggingFace token is invalid")
	// ErrOffline: offline mode and the cache lacks what was asked for.
	ErrOffline = errors.New("offline and not in the local cache")
	// ErrUnreachable: the Hub could not be reached (network errors after all
	// retries). Not an HTTPError: no answer came back.
	ErrUnreachable = errors.New("HuggingFace Hub unreachable")
)

// HTTPError is an error answer from the Hub or its CDN.
type HTTPError struct {
	Method     string
	URL        string // without query string: CDN URLs carry signatures
	StatusCode int
	Code       string // X-Error-Code, e.g. "RepoNotFound"
	Message    string // X-Error-Message or the body's "error", token removed
	RequestID  string // X-Request-Id, for support tickets
	kind       error  // one of the sentinels, or nil
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	if e.kind != nil {
		fmt.Fprintf(&b, "%v: ", e.kind)
	}
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request id %s]", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the sentinel the answer maps to, if any.
func (e *HTTPError) Unwrap() error { return e.kind }

// errorKind maps an error answer to a sentinel much as huggingface_hub's
// hf_raise_for_status does: a 401 that says the credentials are invalid
// first (the Hub sends it with X-Error-Code RepoNotFound on repo URLs, and a
// revoked token is what the operator must fix); then the X-Error-Code; then
// any other 401 on a repo URL, which is how the Hub hides private repos; then
// a 401 elsewhere (whoami).
func errorKind(status int, code, msg, path string) error {
	switch {
	case status == http.StatusUnauthorized && strings.Contains(msg, "Invalid credentials"):
		return ErrInvalidToken
	case code == "RevisionNotFound":
		return ErrRevisionNotFound
	case code == "EntryNotFound":
		return ErrEntryNotFound
	case code == "GatedRepo":
		return ErrGatedRepo
	case code == "RepoNotFound":
		return ErrRepoNotFound
	case status != http.StatusUnauthorized:
		return nil
	case strings.Contains(path, "/resolve/") || strings.Contains(path, "/api/models/"):
		return ErrRepoNotFound
	default:
		return ErrInvalidToken
	}
}
