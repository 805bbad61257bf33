package secret

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRefreshEvery is how long a Refresher trusts a token it has read.
const DefaultRefreshEvery = 5 * time.Minute

// Refresher caches another Provider's token and re-reads it once it is older
// than its refresh period, so a rotated or newly created token is picked up
// without a restart. While it holds a token, a failed re-read (say Secrets
// Manager is briefly unreachable) keeps serving the old one and is retried on
// the next call; a re-read that says the token is gone (ErrNoToken) is
// returned at once.
type Refresher struct {
	src   Provider
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	tok     Token
	fetched time.Time
	errs    atomic.Uint64
}

// NewRefresher wraps src, re-reading it every period (DefaultRefreshEvery if
// every <= 0).
func NewRefresher(src Provider, every time.Duration) *Refresher {
	if every <= 0 {
		every = DefaultRefreshEvery
	}
	return &Refresher{src: src, every: every, now: time.Now}
}

// Token implements Provider.
func (r *Refresher) Token(ctx context.Context) (Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.tok.IsZero() && r.now().Sub(r.fetched) < r.every {
		return r.tok, nil
	}
	return r.refreshLocked(ctx)
}

// Errors counts the source's failed reads so far, for metrics.
func (r *Refresher) Errors() uint64 { return r.errs.Load() }

// Refresh re-reads the source now, whatever the token's age.
func (r *Refresher) Refresh(ctx context.Context) (Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refreshLocked(ctx)
}

func (r *Refresher) refreshLocked(ctx context.Context) (Token, error) {
	t, err := r.src.Token(ctx)
	if err != nil {
		r.errs.Add(1)
		if !r.tok.IsZero() && !errors.Is(err, ErrNoToken) {
			return r.tok, nil
		}
		r.tok = Token{}
		return Token{}, err
	}
	r.tok, r.fetched = t, r.now()
	return t, nil
}
