package modelcache_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hokusai-ai/inference-queue/worker/modelcache"
)

func key(rev string) modelcache.Key { return modelcache.Key{Repo: "acme/leads", Revision: rev} }

// sizedLoader returns the revision as the value and a fixed size per revision.
func sizedLoader(sizes map[string]int64, loads *atomic.Int64) modelcache.Loader[string] {
	return func(_ context.Context, k modelcache.Key) (string, int64, error) {
		loads.Add(1)
		return k.Revision, sizes[k.Revision], nil
	}
}

func TestHundredConcurrentFirstRequestsLoadOnce(t *testing.T) {
	t.Parallel()
	const callers = 100
	var loads atomic.Int64
	release := make(chan struct{})
	c := modelcache.New(1<<20, func(ctx context.Context, k modelcache.Key) (string, int64, error) {
		loads.Add(1)
		<-release
		return "model@" + k.Revision, 10, nil
	})

	var wg sync.WaitGroup
	results := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = c.Get(context.Background(), key("main")) })
	}
	// Hold the load until every caller has missed, so all of them are
	// waiting on it rather than arriving after it finished.
	for c.Stats().Misses < callers {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil || results[i] != "model@main" {
			t.Fatalf("caller %d: got %q, %v", i, results[i], errs[i])
		}
	}
	if got := loads.Load(); got != 1 {
		t.Fatalf("loader ran %d times, want 1", got)
	}
	want := modelcache.Stats{Misses: callers, Loads: 1, Bytes: 10, Entries: 1, MaxBytes: 1 << 20}
	if diff := cmp.Diff(want, c.Stats()); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
}

func TestLRUEvictsByBytes(t *testing.T) {
	t.Parallel()
	var loads atomic.Int64
	c := modelcache.New(100, sizedLoader(map[string]int64{"a": 40, "b": 40, "c": 40}, &loads))
	ctx := context.Background()
	for _, rev := range []string{"a", "b", "a", "c"} { // "a" touched again, so "b" is oldest when "c" arrives
		if _, err := c.Get(ctx, key(rev)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Contains(key("b")) || !c.Contains(key("a")) || !c.Contains(key("c")) {
		t.Fatalf("want a and c cached, b evicted")
	}
	want := modelcache.Stats{Hits: 1, Misses: 3, Loads: 3, Evictions: 1, Bytes: 80, Entries: 2, MaxBytes: 100}
	if diff := cmp.Diff(want, c.Stats()); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
}

func TestTooLargeIsRefusedNotCached(t *testing.T) {
	t.Parallel()
	var loads atomic.Int64
	c := modelcache.New(10, sizedLoader(map[string]int64{"huge": 11}, &loads))
	_, err := c.Get(context.Background(), key("huge"))
	if !errors.Is(err, modelcache.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if s := c.Stats(); s.LoadErrors != 1 || s.Entries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLoadErrorIsNotCached(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var calls atomic.Int64
	c := modelcache.New(100, func(context.Context, modelcache.Key) (string, int64, error) {
		if calls.Add(1) == 1 {
			return "", 0, boom
		}
		return "ok", 1, nil
	})
	if _, err := c.Get(context.Background(), key("main")); !errors.Is(err, boom) {
		t.Fatalf("first Get: %v, want boom", err)
	}
	if v, err := c.Get(context.Background(), key("main")); err != nil || v != "ok" {
		t.Fatalf("second Get: %q, %v", v, err)
	}
}

func TestWarmLoadsEachKeyAndJoinsErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	c := modelcache.New(100, func(_ context.Context, k modelcache.Key) (string, int64, error) {
		if k.Revision == "bad" {
			return "", 0, boom
		}
		return k.Revision, 1, nil
	})
	err := c.Warm(context.Background(), []modelcache.Key{key("v1"), key("bad"), key("v2")})
	if !errors.Is(err, boom) {
		t.Fatalf("Warm: %v, want boom", err)
	}
	if !c.Contains(key("v1")) || !c.Contains(key("v2")) {
		t.Fatal("Warm did not load the good keys")
	}
}

func TestCallerCancelDoesNotCancelSharedLoad(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := modelcache.New(100, func(ctx context.Context, _ modelcache.Key) (string, int64, error) {
		<-release
		return "v", 1, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Get(ctx, key("main")); done <- err }()
	for c.Stats().Misses < 1 {
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(release)
	if v, err := c.Get(context.Background(), key("main")); err != nil || v != "v" {
		t.Fatalf("after cancel: %q, %v", v, err)
	}
}

func BenchmarkGetHit(b *testing.B) {
	var loads atomic.Int64
	c := modelcache.New(1<<20, sizedLoader(map[string]int64{"main": 1}, &loads))
	ctx := context.Background()
	if _, err := c.Get(ctx, key("main")); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx, key("main")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
