package api

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// snapshot is what the API knows of models and workers, re-read from Redis
// every RefreshInterval so the request path makes no extra round trips for it.
type snapshot struct {
	models  map[string]registry.Spec
	order   []string
	info    map[string]*jobs.ModelInfo
	workers []jobs.Heartbeat
	mem     memory
	at      time.Time
	err     error // the last refresh's failure, if it failed
	// tenantLimits are the tenants' own limits, by tenant.
	tenantLimits map[string]apikey.Limits
}

// readyWorkers counts workers ready to serve model id on lane.
func (s *snapshot) readyWorkers(id string, lane jobs.Lane) int {
	return s.sumReady(id, lane, func(*jobs.Heartbeat) int { return 1 })
}

// readySlots is how many tasks the workers ready to serve model id on lane
// run at once, counting a worker that does not say as one.
func (s *snapshot) readySlots(id string, lane jobs.Lane) int {
	return s.sumReady(id, lane, func(hb *jobs.Heartbeat) int { return max(1, hb.Slots) })
}

func (s *snapshot) sumReady(id string, lane jobs.Lane, count func(*jobs.Heartbeat) int) int {
	n := 0
	for i := range s.workers {
		if s.workers[i].Ready(id, lane) {
			n += count(&s.workers[i])
		}
	}
	return n
}

// laneServed reports whether a ready worker of pool consumes lane.
func (s *snapshot) laneServed(pool string, lane jobs.Lane) bool {
	for i := range s.workers {
		if hb := &s.workers[i]; hb.Pool == pool && hb.State == jobs.StateReady && hb.Consumes(lane) {
			return true
		}
	}
	return false
}

// cached reports whether any live worker holds model id in memory.
func (s *snapshot) cached(id string) bool {
	for _, hb := range s.workers {
		for _, m := range hb.Models {
			if m.ID == id && m.Loaded {
				return true
			}
		}
	}
	return false
}

type state struct {
	rdb redis.UniversalClient
	cur atomic.Pointer[snapshot]
}

func (st *state) get() *snapshot { return st.cur.Load() }

// refresh reads the registry, model info and live heartbeats in two round
// trips. On failure the previous snapshot stays, marked with the error.
func (st *state) refresh(ctx context.Context) {
	next, err := st.read(ctx)
	if err != nil {
		prev := *st.get()
		prev.err = err
		st.cur.Store(&prev)
		return
	}
	st.cur.Store(next)
}

func (st *state) read(ctx context.Context) (*snapshot, error) {
	specs, err := registry.List(ctx, st.rdb)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ids, err := st.rdb.ZRangeByScore(ctx, jobs.WorkersKey, &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-jobs.HeartbeatTTL).UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(specs)+len(ids))
	for _, s := range specs {
		keys = append(keys, jobs.ModelInfoKey(s.ID))
	}
	for _, id := range ids {
		keys = append(keys, jobs.HeartbeatKey(id))
	}
	var vals []any
	if len(keys) > 0 {
		if vals, err = st.rdb.MGet(ctx, keys...).Result(); err != nil {
			return nil, err
		}
	}
	limits, err := apikey.TenantLimits(ctx, st.rdb)
	if err != nil {
		return nil, err
	}
	mem, err := readMemory(ctx, st.rdb)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{models: map[string]registry.Spec{}, info: map[string]*jobs.ModelInfo{}, at: now,
		tenantLimits: limits, mem: mem}
	for i, s := range specs {
		snap.models[s.ID] = s
		snap.order = append(snap.order, s.ID)
		if str, ok := vals[i].(string); ok {
			var info jobs.ModelInfo
			if json.Unmarshal([]byte(str), &info) == nil {
				snap.info[s.ID] = &info
			}
		}
	}
	for _, v := range vals[len(specs):] {
		if str, ok := v.(string); ok {
			var hb jobs.Heartbeat
			if json.Unmarshal([]byte(str), &hb) == nil {
				snap.workers = append(snap.workers, hb)
			}
		}
	}
	return snap, nil
}

func (st *state) run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st.refresh(rctx)
		cancel()
	})
}

// every calls f each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
