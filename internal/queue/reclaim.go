package queue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// HoldersKey is the hash of queue q's active tasks and the worker holding
// each (task id -> worker id). DequeueHook writes an entry in the script
// that takes the task, and drops it in the round trip that moves the task
// out of the active list. Its braces hold asynq's hash tag for q, so it
// lives on the queue's Redis Cluster slot.
func HoldersKey(q string) string { return "hokusai:holders:{" + q + "}" }

// reclaimScript hands back queue q's tasks held by dead workers. KEYS:
// active, pending, lease, holders (an order leavesActive does not take for
// one of asynq's); ARGV[1] the task key prefix, ARGV[2]
// the most reclaims a task gets, ARGV[3:] the dead workers. A task still
// active (it has a lease) goes back to the head of pending with asynq's
// own requeue transition (active and lease entries removed, state
// pending), the one asynq makes for tasks a stopping server hands back.
// Its hash counts the reclaims: past the most, the task is left to asynq's
// recoverer, whose retry counts against the task's MaxRetry, so a task
// that kills every worker taking it ends archived instead of going round
// for ever. Entries of tasks no longer active are dropped either way.
var reclaimScript = redis.NewScript(`
local dead = {}
for i = 3, #ARGV do dead[ARGV[i]] = true end
local held = redis.call("HGETALL", KEYS[4])
local n = 0
for i = 1, #held, 2 do
	local id = held[i]
	if dead[held[i+1]] then
		redis.call("HDEL", KEYS[4], id)
		local key = ARGV[1] .. id
		if redis.call("ZSCORE", KEYS[3], id) and redis.call("HINCRBY", key, "reclaims", 1) <= tonumber(ARGV[2]) then
			redis.call("LREM", KEYS[1], 0, id)
			redis.call("ZREM", KEYS[3], id)
			redis.call("RPUSH", KEYS[2], id)
			redis.call("HSET", key, "state", "pending")
			n = n + 1
		end
	end
end
return n`)

// MaxReclaims is how often one task is handed back by Reclaim before it is
// left to asynq's recoverer (see reclaimScript).
const MaxReclaims = 3

// Reclaim puts the tasks of queue q that the workers in dead hold back at
// the head of q's pending list, at once rather than after asynq's lease
// and recoverer (30 s and up to a minute more), and returns how many. It
// is one script, so concurrent calls (every worker runs one) hand each
// task back once.
func Reclaim(ctx context.Context, rdb redis.UniversalClient, q string, dead []string) (int, error) {
	if len(dead) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 2+len(dead))
	args = append(args, Key(q, "t:"), MaxReclaims)
	for _, d := range dead {
		args = append(args, d)
	}
	return reclaimScript.Run(ctx, rdb, []string{Key(q, "active"), Key(q, "pending"), Key(q, "lease"), HoldersKey(q)}, args...).Int()
}

// release runs cmd, an asynq script moving task id out of queue q's
// active list, with the removal of the task's holder entry in the same
// round trip, so no holder outlives its task's lease.
func (h *DequeueHook) release(ctx context.Context, cmd redis.Cmder, q, id string) error {
	_, _ = h.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		_ = pl.Process(ctx, cmd)
		pl.HDel(ctx, HoldersKey(q), id)
		return nil
	})
	return cmd.Err()
}

// leavesActive recognises the asynq v0.26 scripts that move a task out of
// a queue's active list (done, mark as complete, requeue, retry, archive):
// their keys name the queue's active list, then its lease set, first or
// second, and ARGV[1] is the task id. It returns the queue and the id.
func leavesActive(cmd redis.Cmder) (q, id string, ok bool) {
	args := cmd.Args()
	if name, _ := args[0].(string); (name != "evalsha" && name != "eval") || len(args) < 4 {
		return "", "", false
	}
	n, _ := args[2].(int)
	if n < 3 || len(args) < 4+n {
		return "", "", false
	}
	for _, at := range []int{3, 4} {
		active, _ := args[at].(string)
		lease, _ := args[at+1].(string)
		q, isActive := strings.CutSuffix(active, "}:active")
		if isActive && strings.HasPrefix(q, keyPrefix) && lease == strings.TrimSuffix(active, "active")+"lease" {
			id, _ := args[3+n].(string)
			return strings.TrimPrefix(q, keyPrefix), id, id != ""
		}
	}
	return "", "", false
}
