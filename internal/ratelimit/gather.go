package ratelimit

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxGathered bounds the requests one script call decides.
const maxGathered = 256

// Gatherer counts requests against their buckets. The takes of the same
// buckets that arrive while one of theirs is being counted wait for it,
// then go together, in arrival order, as one script call (one round trip,
// one script run in Redis), each still decided as if alone: one after
// another, exactly. A take that finds its buckets idle goes at once, so
// nothing waits at low load. Safe for concurrent use.
type Gatherer struct {
	rdb redis.UniversalClient

	mu    sync.Mutex
	lines map[string]*line // by the buckets' keys and limits
}

// line is the takes of one set of buckets: whether a call of theirs is in
// Redis, and those waiting for it to come back.
type line struct {
	limited []Bucket
	busy    bool
	waiting []*request
}

// NewGatherer counts on rdb.
func NewGatherer(rdb redis.UniversalClient) *Gatherer {
	return &Gatherer{rdb: rdb, lines: map[string]*line{}}
}

// Take counts a request of cost units against every bucket that has a
// limit, exact across API processes. With no limited bucket it allows
// without touching Redis. A caller that leaves (ctx done) before its
// request was sent is not counted; one that leaves after may be.
func (g *Gatherer) Take(ctx context.Context, buckets []Bucket, cost int64, now time.Time) (Decision, error) {
	limited := Limited(buckets)
	if len(limited) == 0 {
		return Decision{Allowed: true}, nil
	}
	sig := signature(limited)
	r := &request{cost: cost, now: now, done: make(chan result, 1)}
	g.mu.Lock()
	l := g.lines[sig]
	if l == nil {
		l = &line{limited: limited}
		g.lines[sig] = l
	}
	if !l.busy {
		// Alone: this goroutine sends it, with the caller's context.
		l.busy = true
		g.mu.Unlock()
		g.send(ctx, sig, l, []*request{r})
		res := <-r.done
		return res.d, res.err
	}
	l.waiting = append(l.waiting, r)
	g.mu.Unlock()
	select {
	case res := <-r.done:
		return res.d, res.err
	case <-ctx.Done():
		g.mu.Lock()
		if i := slices.Index(l.waiting, r); i >= 0 {
			l.waiting = slices.Delete(l.waiting, i, i+1)
		}
		g.mu.Unlock()
		return Decision{}, ctx.Err()
	}
}

// send counts reqs, then starts the line's next call with the requests
// that waited for this one, or marks the line idle.
func (g *Gatherer) send(ctx context.Context, sig string, l *line, reqs []*request) {
	ds, err := takeAll(ctx, g.rdb, l.limited, reqs)
	g.mu.Lock()
	next := l.waiting[:min(len(l.waiting), maxGathered)]
	l.waiting = slices.Clone(l.waiting[len(next):])
	if len(next) == 0 {
		l.busy = false
		delete(g.lines, sig)
	}
	g.mu.Unlock()
	if len(next) > 0 {
		// Its callers have contexts of their own; the call outlives any one.
		go g.send(context.WithoutCancel(ctx), sig, l, next)
	}
	for i, r := range reqs {
		if err != nil {
			r.done <- result{err: err}
			continue
		}
		r.done <- result{d: ds[i]}
	}
}

// signature names a set of limited buckets: their keys and limits, since
// a limit changed while a call is out must not share the call.
func signature(limited []Bucket) string {
	var b strings.Builder
	for _, l := range limited {
		b.WriteString(l.Key)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(l.Limit.N, 10))
		b.WriteByte('/')
		b.WriteString(strconv.FormatInt(int64(l.Limit.Per), 10))
		b.WriteByte(' ')
	}
	return b.String()
}
