package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultEndpoint is the public Hub.
const DefaultEndpoint = "https://huggingface.co"

// Options configure a Client. OptionsFromEnv fills them the way
// huggingface_hub reads its environment.
type Options struct {
	// Endpoint is the Hub's base URL. HF_ENDPOINT; default DefaultEndpoint.
	Endpoint string
	// CacheDir is the cache root. HF_HUB_CACHE, else $HF_HOME/hub, HF_HOME
	// defaulting to $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface.
	CacheDir string
	// Offline serves Snapshot from the cache only. HF_HUB_OFFLINE=1.
	Offline bool
	// Token returns the token to send, "" for anonymous. It is called for
	// every request so a rotated token is used at once. Nil: anonymous.
	Token func(ctx context.Context) (string, error)
	// HTTPClient sends the requests; its CheckRedirect is ignored because the
	// Client follows redirects itself. Default: a client on http.DefaultTransport.
	HTTPClient *http.Client
	// MaxAttempts bounds tries per request (429, 5xx, network errors). Default 5.
	MaxAttempts int
	// MinBackoff is the first retry's delay, doubling up to MaxBackoff, with
	// jitter. A longer Retry-After wins. Defaults 1s and 30s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// RequestTimeout abandons a request that waits this long for response
	// headers or between two reads of the body. Default 30s.
	RequestTimeout time.Duration
	// UserAgent is sent on every request. Default "hokusai-worker".
	UserAgent string
}

// OptionsFromEnv reads HF_ENDPOINT, HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME,
// HOME and HF_HUB_OFFLINE through getenv. Token and the retry knobs are left
// for the caller.
func OptionsFromEnv(getenv func(string) string) Options {
	home := getenv("HF_HOME")
	if home == "" {
		xdg := getenv("XDG_CACHE_HOME")
		if xdg == "" {
			xdg = filepath.Join("~", ".cache")
		}
		home = filepath.Join(xdg, "huggingface")
	}
	cache := getenv("HF_HUB_CACHE")
	if cache == "" {
		cache = filepath.Join(home, "hub")
	}
	if rest, ok := strings.CutPrefix(cache, "~"); ok && (rest == "" || rest[0] == '/') {
		cache = getenv("HOME") + rest
	}
	offline := false
	switch strings.ToUpper(getenv("HF_HUB_OFFLINE")) {
	case "1", "ON", "YES", "TRUE":
		offline = true
	}
	return Options{Endpoint: getenv("HF_ENDPOINT"), CacheDir: cache, Offline: offline}
}

// Client talks to one Hub endpoint and one cache directory. It is safe for
// concurrent use.
type Client struct {
	opts     Options
	endpoint *url.URL
	http     *http.Client
	blobs    singleflight.Group // keyed by blob path

	// sleep waits between retries; tests record instead of waiting.
	sleep func(ctx context.Context, d time.Duration) error
	// lockPoll is how often a busy blob lock is retried.
	lockPoll time.Duration
}

// New returns a Client for opts, filling defaults.
func New(opts Options) (*Client, error) {
	if opts.Endpoint == "" {
		opts.Endpoint = DefaultEndpoint
	}
	opts.Endpoint = strings.TrimRight(opts.Endpoint, "/")
	ep, err := url.Parse(opts.Endpoint)
	if err != nil || (ep.Scheme != "http" && ep.Scheme != "https") || ep.Host == "" {
		return nil, fmt.Errorf("hub endpoint %q is not an http(s) URL", opts.Endpoint)
	}
	if opts.CacheDir == "" {
		return nil, errors.New("hub cache directory is not set")
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "hokusai-worker"
	}
	hc := http.Client{}
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		opts:     opts,
		endpoint: ep,
		http:     &hc,
		sleep:    sleepCtx,
		lockPoll: 100 * time.Millisecond,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resolveURL is {endpoint}/{repo}/resolve/{revision}/{file}, the revision
// escaped as a single segment (refs/pr/1 -> refs%2Fpr%2F1).
func (c *Client) resolveURL(repo, revision, file string) string {
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.opts.Endpoint + "/" + repo + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

func (c *Client) apiURL(path string) string { return c.opts.Endpoint + "/api/" + path }

// onEndpointHost reports whether u is on the Hub's own host, the only place
// the token may go.
func (c *Client) onEndpointHost(u *url.URL) bool {
	return u.Scheme == c.endpoint.Scheme && u.Host == c.endpoint.Host
}
