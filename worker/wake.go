package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// wakeHook is a go-redis hook on the client handed to asynq. asynq v0.26
// polls: after a round in which every queue was empty it sleeps
// TaskCheckInterval. The hook watches asynq's dequeue script; when a whole
// round came back empty it blocks on the pool's wake list (BLPOP, up to
// timeout) before letting the round end, so an idle worker costs a few Redis
// commands a second and wakes within a round trip of the API's push. The
// wake-up names the lane that has work, and the hook runs the same dequeue
// script against that lane's queue at once, so the task is taken in the same
// round rather than after asynq's sleep and a new round. It also pauses after
// dequeue errors, since asynq retries those without sleeping and would spin
// while Redis is down.
type wakeHook struct {
	rdb   redis.UniversalClient
	pool  string
	lanes []jobs.Lane
	// wakeKeys and queueSet are derived from pool and lanes once, since the
	// dequeue path reads them on every wake-up.
	wakeKeys []string
	queueSet map[string]int
	timeout  time.Duration
	ctx      context.Context // canceled at shutdown so no BLPOP outlives it

	mu     sync.Mutex
	empty  map[string]bool // queues found empty since the last task or block
	fails  int
	wakes  func()      // counts wake-ups; for metrics and tests
	closed func() bool // while true, no task is taken (the worker is not ready)
}

func (h *wakeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *wakeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *wakeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		q, ok := dequeueQueue(cmd)
		if !ok {
			return next(ctx, cmd)
		}
		if h.closed != nil && h.closed() {
			// Answer "nothing to do" without touching the queues.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-h.ctx.Done():
			}
			cmd.SetErr(redis.Nil)
			return redis.Nil
		}
		err := next(ctx, cmd)
		switch {
		case err == nil:
			h.reset(0)
		case errors.Is(err, redis.Nil):
			if h.roundEmpty(q) {
				if lane, woken := h.block(); woken {
					return h.retarget(ctx, next, cmd, q, jobs.Queue(h.pool, jobs.Lane(lane)))
				}
			}
		case strings.HasPrefix(err.Error(), "NOSCRIPT"):
			// go-redis retries with EVAL; not a failure.
		default:
			h.pause()
		}
		return err
	}
}

func (h *wakeHook) reset(fails int) {
	h.mu.Lock()
	clear(h.empty)
	h.fails = fails
	h.mu.Unlock()
}

func (h *wakeHook) roundEmpty(q string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails = 0
	h.empty[q] = true
	if len(h.empty) < len(h.lanes) {
		return false
	}
	clear(h.empty)
	return true
}

// block waits for a wake-up and returns the lane it names.
func (h *wakeHook) block() (string, bool) {
	// go-redis does not interrupt a blocking command when its context is
	// canceled, so block in one-second slices (its smallest BLPOP timeout)
	// to honour shutdown.
	deadline := time.Now().Add(h.timeout)
	for h.ctx.Err() == nil && time.Now().Before(deadline) {
		kv, err := h.rdb.BLPop(h.ctx, time.Second, h.wakeKeys...).Result()
		switch {
		case err == nil:
			if h.wakes != nil {
				h.wakes()
			}
			return kv[1], true
		case errors.Is(err, redis.Nil):
		default:
			if h.ctx.Err() == nil {
				h.pause()
			}
			return "", false
		}
	}
	return "", false
}

// retarget runs asynq's dequeue script, whose call for queue from came back
// empty, against queue to, and hands its answer to asynq as if from had had
// the task. asynq reads the task's queue from the task itself, so it leases
// and completes it on the right queue.
func (h *wakeHook) retarget(ctx context.Context, next redis.ProcessHook, cmd redis.Cmder, from, to string) error {
	orig, ok := cmd.(*redis.Cmd)
	if _, known := h.queueSet[to]; !ok || !known {
		return redis.Nil
	}
	args := slices.Clone(cmd.Args())
	old, repl := "asynq:{"+from+"}", "asynq:{"+to+"}"
	for i := 3; i < len(args); i++ {
		if str, ok := args[i].(string); ok {
			args[i] = strings.Replace(str, old, repl, 1)
		}
	}
	again := redis.NewCmd(ctx, args...)
	err := next(ctx, again)
	orig.SetVal(again.Val())
	orig.SetErr(err)
	if err == nil {
		h.reset(0)
	}
	return err
}

// newWakeHook returns the hook for a worker of pool consuming lanes.
func newWakeHook(ctx context.Context, rdb redis.UniversalClient, pool string, lanes []jobs.Lane, timeout time.Duration) *wakeHook {
	h := &wakeHook{rdb: rdb, pool: pool, lanes: lanes, timeout: timeout, ctx: ctx,
		empty: map[string]bool{}, queueSet: jobs.Queues(pool, lanes...)}
	for _, l := range lanes {
		h.wakeKeys = append(h.wakeKeys, jobs.WakeKey(pool, l))
	}
	return h
}

// pause backs off 50ms, 100ms, ... up to 1s while dequeues keep failing.
func (h *wakeHook) pause() {
	h.mu.Lock()
	h.fails++
	d := time.Duration(h.fails) * 50 * time.Millisecond
	h.mu.Unlock()
	select {
	case <-time.After(min(d, time.Second)):
	case <-h.ctx.Done():
	}
}

// dequeueQueue recognises asynq v0.26's dequeue script by its keys
// (asynq:{q}:pending, :paused, :active, :lease) and returns the queue name.
func dequeueQueue(cmd redis.Cmder) (string, bool) {
	args := cmd.Args()
	if len(args) < 7 {
		return "", false
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return "", false
	}
	if n, _ := args[2].(int); n != 4 {
		return "", false
	}
	pending, _ := args[3].(string)
	lease, _ := args[6].(string)
	q, ok := strings.CutSuffix(pending, "}:pending")
	if !ok || !strings.HasPrefix(q, "asynq:{") || !strings.HasSuffix(lease, "}:lease") {
		return "", false
	}
	return strings.TrimPrefix(q, "asynq:{"), true
}
