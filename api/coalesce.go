package api

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// predictGroupInFlight is how many tasks of one key a process keeps in
// the queue before it gathers the next predicts into a group.
const predictGroupInFlight = 1

// groupKey is what the members of one predict group share: the model, its
// pool, and the options as sent (a block is scored one way).
type groupKey struct{ model, pool, options string }

// groups gathers sync predicts into predict-group tasks, per key. A predict
// whose key has fewer than inFlight tasks sent and unanswered by this
// process goes at once, alone, as a plain predict task: there is no timer,
// so a lone caller waits for nothing. Predicts that arrive while the key is
// at that mark join its open group, which goes when one of the key's tasks
// is answered (the queue is the batching window) or when it is full.
type groups struct {
	maxRows, maxBytes, inFlight int
	// send enqueues a group found ready when a task was answered; it runs
	// on a goroutine of its own.
	send func(*group)

	mu   sync.Mutex
	keys map[groupKey]*keyState
}

type keyState struct {
	flying int    // tasks of the key sent and not yet answered
	open   *group // gathering; nil when none
}

// group is one task's worth of callers. Its fields are guarded by
// groups.mu, except members once the group has left its key's open slot.
type group struct {
	key     groupKey
	spec    registry.Spec
	members []jobs.PredictPayload
	rows    int
	bytes   int
	waiting int  // members not done with it yet
	flying  bool // counted in its key's flying
}

// join adds p (rows rows) to its key and says whether the caller must send
// the group it is in now: when it goes alone, or when it filled its group.
func (gs *groups) join(spec registry.Spec, p jobs.PredictPayload, rows int) (g *group, sendNow bool) {
	k := groupKey{model: spec.ID, pool: spec.Pool, options: string(p.Options)}
	size := len(p.Inputs) + len(p.Options)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	ks := gs.keys[k]
	if ks == nil {
		ks = &keyState{}
		gs.keys[k] = ks
	}
	if g = ks.open; g != nil && (g.rows+rows > gs.maxRows || g.bytes+size > gs.maxBytes) {
		// p does not fit: the open group goes as it is.
		gs.take(ks, g)
		go gs.send(g)
		g = nil
	}
	if g == nil {
		g = &group{key: k, spec: spec}
		ks.open = g
	}
	g.members = append(g.members, p)
	g.rows += rows
	g.bytes += size
	g.waiting++
	if ks.flying < gs.inFlight || g.rows >= gs.maxRows || g.bytes >= gs.maxBytes {
		gs.take(ks, g)
		return g, true
	}
	return g, false
}

// take marks ks's open group g as sent. A group none of whose members
// still waits is sent (a member that timed out polls its id) but not
// counted: no leave would ever uncount it.
func (gs *groups) take(ks *keyState, g *group) {
	ks.open = nil
	if g.waiting > 0 {
		ks.flying++
		g.flying = true
	}
}

// leave is called once by each member of g when it stops waiting: answered,
// timed out or gone. When the last one of a sent group leaves, its key may
// send its open group.
func (gs *groups) leave(g *group) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g.waiting--
	if g.waiting > 0 || !g.flying {
		return
	}
	g.flying = false
	ks := gs.keys[g.key]
	ks.flying--
	if next := ks.open; next != nil && ks.flying < gs.inFlight {
		gs.take(ks, next)
		go gs.send(next)
	}
	if ks.flying == 0 && ks.open == nil {
		delete(gs.keys, g.key)
	}
}

// sendSync enqueues a sync predict: alone, as today, when its key is not
// busy, else in a group. It returns whether p rides in a group and the
// function the caller must call when it stops waiting. An error of a group
// sent later reaches its members as their reply (see sendGroup).
func (s *Server) sendSync(c echo.Context, spec registry.Spec, p jobs.PredictPayload, rows int) (grouped bool, leave func(), err error) {
	if s.groups.maxRows <= 1 || rows > s.groups.maxRows {
		return false, func() {}, s.enqueue(c, spec, p, jobs.LaneSync)
	}
	g, sendNow := s.groups.join(spec, p, rows)
	leave = func() { s.groups.leave(g) }
	if !sendNow {
		return true, leave, nil
	}
	if len(g.members) == 1 {
		return false, leave, s.enqueue(c, spec, p, jobs.LaneSync)
	}
	c.Set("queue", jobs.Queue(spec.Pool, jobs.LaneSync))
	if err := s.enqueueGroup(context.WithoutCancel(c.Request().Context()), g); err != nil {
		return true, leave, s.unavailable(c, err)
	}
	return true, leave, nil
}

// sendGroup is groups.send: it enqueues g, and on failure answers each
// member queue_unavailable through its reply.
func (s *Server) sendGroup(g *group) {
	if err := s.enqueueGroup(context.Background(), g); err != nil {
		s.log.Warn("redis unavailable", "members", len(g.members), "err", err.Error())
	}
}

// enqueueGroup enqueues g as one predict-group task, with a job record for
// each member naming that task, so each member's id can be polled.
func (s *Server) enqueueGroup(ctx context.Context, g *group) error {
	lane := jobs.LaneSync
	carrier := jobs.NewRequestID()
	ttl := s.cfg.retention(lane)
	task, err := jobs.NewPredictGroupTask(jobs.PredictGroup{Members: g.members, RetentionSeconds: int64(ttl.Seconds())},
		carrier, jobs.TaskOptions{Pool: g.spec.Pool, Lane: lane, Retention: ttl, MaxRetry: 3})
	if err == nil {
		recs := make([][]byte, len(g.members))
		for i, m := range g.members {
			recs[i], _ = json.Marshal(jobs.JobRecord{Queue: jobs.Queue(g.spec.Pool, lane), Tenant: m.Tenant, ModelID: m.ModelID,
				CreatedAt: m.EnqueuedAt, Task: carrier})
		}
		err = s.put(ctx, carrier, task, g.spec.Pool, lane, nil, func(pl redis.Pipeliner) {
			for i, m := range g.members {
				pl.Set(ctx, jobs.JobKey(m.RequestID), recs[i], 2*ttl) // as enqueue's record
			}
		})
	}
	if err != nil {
		s.metrics.enqueue.WithLabelValues(jobs.Queue(g.spec.Pool, lane)).Inc()
		answer := redisError(err)
		for _, m := range g.members {
			s.replies.deliver(jobs.Outcome{RequestID: m.RequestID, Error: &jobs.Error{Code: answer.Code, Detail: answer.Detail}})
		}
	}
	return err
}
