package ratelimit

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

// One script call decides its requests one after another, each as if
// alone: a request that does not fit is refused and charged nothing, and
// a later, smaller one still fits.
func TestTakeAllInOrder(t *testing.T) {
	rdb := redistest.Client(t, srv)
	now := time.UnixMilli(1_800_000_000_000)
	b := []Bucket{{Policy: "key", Key: "rl:test:order", Limit: Limit{N: 5, Per: time.Hour}}}
	reqs := []*request{{cost: 3, now: now}, {cost: 3, now: now}, {cost: 1, now: now}, {cost: 2, now: now}}
	ds, err := takeAll(t.Context(), rdb, b, reqs)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		allowed   bool
		remaining int64
	}
	want := []got{{true, 2}, {false, 0}, {true, 1}, {false, 0}}
	for i, d := range ds {
		if (got{d.Allowed, d.Remaining}) != want[i] {
			t.Errorf("request %d (cost %d): allowed %v remaining %d; want %+v", i+1, reqs[i].cost, d.Allowed, d.Remaining, want[i])
		}
	}
	// What the call charged is stored: one unit is left.
	if d, err := NewGatherer(rdb).Take(t.Context(), b, 1, now); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after the call: %+v, %v; want the last unit", d, err)
	}
}

// Concurrent takes count exactly (of 200 against a limit of 50, 50 are
// allowed, each told a different remaining count, as one after another
// would be) in fewer script calls than requests. A script Redis has lost
// (flushed, failed over) is loaded again.
func TestGathererExact(t *testing.T) {
	rdb := redistest.Client(t, srv)
	g := NewGatherer(rdb)
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	b := []Bucket{{Policy: "key", Key: "rl:test:gathered", Limit: Limit{N: 50, Per: time.Hour}},
		{Policy: "tenant", Key: "rl:test:gathered-tenant", Limit: Limit{N: 1000, Per: time.Hour}}}
	calls := scriptCalls(t, rdb)
	var mu sync.Mutex
	var remaining []int64
	refused := 0
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			d, err := g.Take(t.Context(), b, 1, time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case d.Allowed:
				remaining = append(remaining, d.Remaining)
			default:
				refused++
			}
		})
	}
	wg.Wait()
	slices.Sort(remaining)
	want := make([]int64, 50)
	for i := range want {
		want[i] = int64(i)
	}
	if !slices.Equal(remaining, want) || refused != 150 {
		t.Fatalf("allowed with remaining %v, refused %d; want 0..49 once each and 150 refused", remaining, refused)
	}
	if n := scriptCalls(t, rdb) - calls; n >= 200 {
		t.Errorf("%d script calls for 200 takes: nothing was gathered", n)
	} else {
		t.Logf("%d script calls for 200 takes", n)
	}
	if len(g.lines) != 0 {
		t.Errorf("%d lines left after every take came back", len(g.lines))
	}
}

// A caller that leaves while its take waits for the one in Redis is not
// counted; the one in Redis is, and so is one that waited to the end.
func TestGathererLeaving(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	g := NewGatherer(rdb)
	b := []Bucket{{Policy: "key", Key: "rl:test:leaving", Limit: Limit{N: 3, Per: time.Hour}}}
	// A take in Redis: its line is busy until send comes back. It came
	// first (a later time would leave the others less room).
	first := &request{cost: 1, now: time.Now(), done: make(chan result, 1)}
	sig := signature(b)
	l := &line{limited: b, busy: true}
	g.lines[sig] = l
	waiting := func(n int) func() bool {
		return func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(l.waiting) == n }
	}
	leaving, leave := context.WithCancel(ctx)
	left := make(chan error, 1)
	go func() {
		_, err := g.Take(leaving, b, 1, time.Now())
		left <- err
	}()
	waitFor(t, waiting(1))
	stayed := make(chan result, 1)
	go func() {
		d, err := g.Take(ctx, b, 1, time.Now())
		stayed <- result{d, err}
	}()
	waitFor(t, waiting(2))
	leave()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left got %v; want context.Canceled", err)
	}
	g.send(ctx, sig, l, []*request{first})
	if r := <-first.done; r.err != nil || !r.d.Allowed || r.d.Remaining != 2 {
		t.Fatalf("the take in Redis: %+v, %v; want allowed with 2 left", r.d, r.err)
	}
	if r := <-stayed; r.err != nil || !r.d.Allowed || r.d.Remaining != 1 {
		t.Fatalf("the take that waited: %+v, %v; want allowed with 1 left", r.d, r.err)
	}
	// The caller that left was not counted: one unit is left.
	if d, err := g.Take(ctx, b, 1, time.Now()); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after the caller left: %+v, %v; want the last unit", d, err)
	}
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.lines) == 0 })
}

// scriptCalls is how many EVAL and EVALSHA calls Redis has run.
func scriptCalls(t *testing.T, rdb redis.UniversalClient) int {
	t.Helper()
	info, err := rdb.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_eval"); ok {
			_, after, _ := strings.Cut(rest, "calls=")
			c, _ := strconv.Atoi(strings.Split(after, ",")[0])
			n += c
		}
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
