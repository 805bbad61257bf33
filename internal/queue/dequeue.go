package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// DequeueHook is a go-redis hook on the client a worker hands to asynq. It
// changes how asynq v0.26 takes tasks in two ways, watching asynq's dequeue
// script.
//
// One round trip a round: asynq tries its queues one script call at a time,
// in a weighted random order, so a worker whose traffic is all sync spends a
// second (and third) round trip on the empty async and batch queues about
// four rounds in ten, on the one goroutine that takes every task. The hook
// answers the first call of a round by running dequeueAny over all of the
// worker's queues in one call: the queue asynq drew first, then the others
// in a weighted random order of its own (so each queue leads as often as
// asynq would make it), and answers the round's remaining calls itself
// when that found nothing.
//
// Wake-ups instead of polling: asynq sleeps TaskCheckInterval after an
// empty round. When a round came back empty the hook blocks on the pool's
// wake lists (BLPOP, up to timeout) first, so an idle worker costs a few
// Redis commands a second and wakes within a round trip of the API's push.
// The wake-up names the lane that has work, and the hook dequeues from that
// lane's queue at once, so the task is taken in the same round.
//
// It also pauses after dequeue errors, since asynq retries those without
// sleeping and would spin while Redis is down. Only asynq's processor
// goroutine dequeues, so rounds never interleave.
type DequeueHook struct {
	rdb    redis.UniversalClient
	pool   string
	holder string // the worker, as Reclaim names it
	// wakeKeys and weights are derived from pool and lanes once, since the
	// dequeue path reads them on every round.
	wakeKeys []string
	weights  map[string]int // queue -> asynq weight
	timeout  time.Duration
	ctx      context.Context // canceled at shutdown so no BLPOP outlives it

	mu    sync.Mutex
	skip  int // calls left in a round already found empty
	fails int

	// Wakes, when set, is called on every wake-up (for metrics and tests).
	Wakes func()
	// Closed, when set, is asked before every dequeue: while it says true,
	// no task is taken (the worker is not ready).
	Closed func() bool
}

func (h *DequeueHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *DequeueHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *DequeueHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if q, id, ok := leavesActive(cmd); ok {
			return h.release(ctx, cmd, q, id)
		}
		q, ok := dequeueQueue(cmd)
		if !ok {
			return next(ctx, cmd)
		}
		if h.Closed != nil && h.Closed() {
			// Answer "nothing to do" without touching the queues.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-h.ctx.Done():
			}
			cmd.SetErr(redis.Nil)
			return redis.Nil
		}
		if h.skipped() {
			cmd.SetErr(redis.Nil)
			return redis.Nil
		}
		err := h.dequeue(ctx, next, cmd, q, h.order(q))
		if errors.Is(err, redis.Nil) {
			if lane, woken := h.block(); woken {
				if to := jobs.Queue(h.pool, jobs.Lane(lane)); h.weights[to] > 0 {
					err = h.dequeue(ctx, next, cmd, q, []string{to})
				}
			}
		}
		switch {
		case err == nil:
			h.reset(0)
		case errors.Is(err, redis.Nil):
			h.reset(len(h.weights) - 1)
		default:
			h.pause()
		}
		return err
	}
}

// skipped reports whether this call belongs to a round already found empty,
// counting it off.
func (h *DequeueHook) skipped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.skip == 0 {
		return false
	}
	h.skip--
	return true
}

// reset ends a round: skip calls are left in it (its queues found empty),
// and dequeues work again.
func (h *DequeueHook) reset(skip int) {
	h.mu.Lock()
	h.skip, h.fails = skip, 0
	h.mu.Unlock()
}

// order is first, then the worker's other queues drawn one by one with
// probability proportional to their weights, as asynq orders a round.
func (h *DequeueHook) order(first string) []string {
	out := make([]string, 1, len(h.weights))
	out[0] = first
	total := 0
	for q, w := range h.weights {
		if q != first {
			total += w
		}
	}
	for len(out) < len(h.weights) {
		r := rand.IntN(total)
		for q, w := range h.weights {
			if slices.Contains(out, q) {
				continue
			}
			if r -= w; r < 0 {
				out = append(out, q)
				total -= w
				break
			}
		}
	}
	return out
}

// block waits for a wake-up and returns the lane it names.
func (h *DequeueHook) block() (string, bool) {
	// go-redis does not interrupt a blocking command when its context is
	// canceled, so block in one-second slices (its smallest BLPOP timeout)
	// to honour shutdown.
	deadline := time.Now().Add(h.timeout)
	for h.ctx.Err() == nil && time.Now().Before(deadline) {
		kv, err := h.rdb.BLPop(h.ctx, time.Second, h.wakeKeys...).Result()
		switch {
		case err == nil:
			if h.Wakes != nil {
				h.Wakes()
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

// dequeueAny takes the first task of the first of its queues (five keys
// each: pending, paused, active, lease, holders) that is not paused and has
// one, with the same writes asynq v0.26's own dequeue script makes for one
// queue: pending -> active list, state active, pending_since dropped, lease
// until ARGV[1]; and records ARGV[2], the worker, as the task's holder (see
// Reclaim). ARGV[2+i] is queue i's task key prefix. It returns the task's
// encoded message, or nil.
var dequeueAny = redis.NewScript(dequeueAnySource)

const dequeueAnySource = `
for i = 1, #KEYS, 5 do
	if redis.call("EXISTS", KEYS[i+1]) == 0 then
		local id = redis.call("RPOPLPUSH", KEYS[i], KEYS[i+2])
		if id then
			local key = ARGV[2 + (i + 4) / 5] .. id
			redis.call("HSET", key, "state", "active")
			redis.call("HDEL", key, "pending_since")
			redis.call("ZADD", KEYS[i+3], ARGV[1], id)
			redis.call("HSET", KEYS[i+4], id, ARGV[2])
			return redis.call("HGET", key, "msg")
		end
	end
end
return nil`

// dequeue answers asynq's dequeue call cmd, made for queue from, with
// dequeueAny over queues in order, and hands its answer to asynq as if
// from had had the task. asynq reads the task's queue from the task itself,
// so it leases and completes it on the right queue. It runs through next,
// below this hook, and falls back from EVALSHA to EVAL as go-redis does.
func (h *DequeueHook) dequeue(ctx context.Context, next redis.ProcessHook, cmd redis.Cmder, from string, queues []string) error {
	// asynq's call: evalsha SHA 4 pending paused active lease leaseUntil prefix.
	orig, ok := cmd.(*redis.Cmd)
	args := cmd.Args()
	if !ok || len(args) != 9 {
		return next(ctx, cmd) // not the call shape dequeueQueue vouched for
	}
	names := make([]string, 0, 5)
	for _, a := range append(args[3:7:7], args[8]) {
		if s, ok := a.(string); ok {
			names = append(names, s)
		}
	}
	if len(names) != 5 {
		return next(ctx, cmd)
	}
	keys, prefixes := make([]any, 0, 5*len(queues)), make([]any, 0, len(queues))
	old := Key(from, "")
	for _, q := range queues {
		repl := Key(q, "")
		for _, k := range names[:4] {
			keys = append(keys, strings.Replace(k, old, repl, 1))
		}
		keys = append(keys, HoldersKey(q))
		prefixes = append(prefixes, strings.Replace(names[4], old, repl, 1))
	}
	run := func(name, script string) *redis.Cmd {
		c := redis.NewCmd(ctx, slices.Concat([]any{name, script, len(keys)}, keys, []any{args[7], h.holder}, prefixes)...)
		if err := next(ctx, c); err != nil {
			c.SetErr(err) // hooks below this one return errors, not set them
		}
		return c
	}
	c := run("evalsha", dequeueAny.Hash())
	if err := c.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		c = run("eval", dequeueAnySource)
	}
	orig.SetVal(c.Val())
	orig.SetErr(c.Err())
	return c.Err()
}

// NewDequeueHook returns the hook for worker holder of pool consuming
// lanes: add it to the client given to asynq.NewServerFromRedisClient.
// Idle, it blocks on the lanes' wake lists for up to timeout a round; ctx
// ends every block. Each task it takes is recorded as held by holder until
// asynq moves it out of the active list, so Reclaim can hand it back should
// holder die.
func NewDequeueHook(ctx context.Context, rdb redis.UniversalClient, holder, pool string, lanes []jobs.Lane, timeout time.Duration) *DequeueHook {
	h := &DequeueHook{rdb: rdb, pool: pool, holder: holder, timeout: timeout, ctx: ctx,
		weights: jobs.Queues(pool, lanes...)}
	for _, l := range lanes {
		h.wakeKeys = append(h.wakeKeys, jobs.WakeKey(pool, l))
	}
	return h
}

// pause backs off 50ms, 100ms, ... up to 1s while dequeues keep failing.
func (h *DequeueHook) pause() {
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
	if !ok || !strings.HasPrefix(q, keyPrefix) || !strings.HasSuffix(lease, "}:lease") {
		return "", false
	}
	return strings.TrimPrefix(q, keyPrefix), true
}
