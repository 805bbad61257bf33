package modelcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/singleflight"
)

// Key names one model version.
type Key struct {
	Repo     string
	Revision string
}

func (k Key) String() string { return k.Repo + "@" + k.Revision }

// Loader loads the value for key and reports its size in bytes. It runs
// detached from the cancellation of the caller that triggered it, so one
// impatient caller does not fail the others waiting on the same load; it keeps
// the caller's context values.
type Loader[V any] func(ctx context.Context, key Key) (value V, size int64, err error)

// ErrTooLarge reports a value bigger than the whole cache budget. Such a value
// is never cached (it would be reloaded on every request), so the load fails.
var ErrTooLarge = errors.New("model is larger than the cache budget")

// Stats is a snapshot of the cache's counters since it was created.
type Stats struct {
	Hits       uint64 // Get calls answered from memory
	Misses     uint64 // Get calls that had to wait for a load
	Loads      uint64 // loader calls that succeeded
	LoadErrors uint64 // loader calls that failed
	Evictions  uint64 // entries dropped to make room
	Bytes      int64  // bytes held now
	Entries    int    // entries held now
	MaxBytes   int64  // the budget
}

// Cache is an in-memory LRU of loaded values bounded in bytes. The zero value
// is not usable; call New.
type Cache[V any] struct {
	load     Loader[V]
	maxBytes int64
	flight   singleflight.Group

	mu    sync.Mutex
	lru   *list.List // front is most recently used; elements hold *entry[V]
	items map[Key]*list.Element
	stats Stats
}

type entry[V any] struct {
	key   Key
	value V
	size  int64
}

// New returns a cache holding at most maxBytes of values loaded by load.
func New[V any](maxBytes int64, load Loader[V]) *Cache[V] {
	return &Cache[V]{
		load:     load,
		maxBytes: maxBytes,
		lru:      list.New(),
		items:    make(map[Key]*list.Element),
		stats:    Stats{MaxBytes: maxBytes},
	}
}

// Get returns the value for key, loading it on a miss. Concurrent misses for
// the same key share one load. If ctx ends first, Get returns ctx's error and
// the load carries on for the others.
func (c *Cache[V]) Get(ctx context.Context, key Key) (V, error) {
	if v, ok := c.lookup(key, true); ok {
		return v, nil
	}
	ch := c.flight.DoChan(flightKey(key), func() (any, error) {
		// A load that finished between our lookup and joining the flight
		// has already stored the value.
		if v, ok := c.lookup(key, false); ok {
			return v, nil
		}
		return c.loadAndStore(context.WithoutCancel(ctx), key)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			var zero V
			return zero, res.Err
		}
		return res.Val.(V), nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Warm loads every key that is not cached yet, one after another, and returns
// the failures joined. It stops early only when ctx ends.
func (c *Cache[V]) Warm(ctx context.Context, keys []Key) error {
	var errs []error
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if _, err := c.Get(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Contains reports whether key is cached, without loading it or touching its
// recency.
func (c *Cache[V]) Contains(key Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[key]
	return ok
}

// Stats returns the current counters.
func (c *Cache[V]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// lookup returns a cached value and marks it recently used. count says
// whether this is the caller's first look, which counts as one hit or one
// miss; the re-check inside a flight counts neither, so each Get is counted
// once.
func (c *Cache[V]) lookup(key Key, count bool) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.lru.MoveToFront(el)
		if count {
			c.stats.Hits++
		}
		return el.Value.(*entry[V]).value, true
	}
	if count {
		c.stats.Misses++
	}
	var zero V
	return zero, false
}

func (c *Cache[V]) loadAndStore(ctx context.Context, key Key) (V, error) {
	v, size, err := c.load(ctx, key)
	if err == nil && size > c.maxBytes {
		err = fmt.Errorf("%s needs %d bytes, budget is %d: %w", key, size, c.maxBytes, ErrTooLarge)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.stats.LoadErrors++
		var zero V
		return zero, fmt.Errorf("load %s: %w", key, err)
	}
	c.stats.Loads++
	for c.stats.Bytes+size > c.maxBytes {
		c.evictOldest()
	}
	c.items[key] = c.lru.PushFront(&entry[V]{key: key, value: v, size: size})
	c.stats.Bytes += size
	c.stats.Entries = len(c.items)
	return v, nil
}

// evictOldest drops the least recently used entry; c.mu must be held.
func (c *Cache[V]) evictOldest() {
	el := c.lru.Back()
	e := c.lru.Remove(el).(*entry[V])
	delete(c.items, e.key)
	c.stats.Bytes -= e.size
	c.stats.Entries = len(c.items)
	c.stats.Evictions++
}

// flightKey separates repo and revision with a byte neither can contain.
func flightKey(k Key) string { return k.Repo + "\x00" + k.Revision }
