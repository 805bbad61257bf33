package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Fair admission of a pool's async lane: each tenant has at most a window
// of tasks in the async queue (pending or running); past it a task waits,
// encoded as asynq encodes it, in its tenant's own line (keys in
// jobs/fair.go), and joins the queue when one of the tenant's own is done.
// The queue is served in order, so tenants with work waiting take turns,
// each in proportion to its window.
//
// No round trip is added for it. EnqueueFair's task goes through asynq's
// client as any other, and FollowUpHook swaps asynq's enqueue script for
// admitFair, which makes asynq's writes when the task is admitted (so asynq
// cannot tell the difference) and holds it otherwise. A finished task's
// release rides in the pipeline that stores its result, and admits the
// tenant's next tasks inside the same script, again with asynq's writes:
// no process can die between a task leaving the line and reaching the
// queue. ReapFair frees the places of tasks that ended without a release
// (retried out, deleted, a worker gone before its release).
//
// Every script keeps to one pool's keys (one Redis Cluster hash slot),
// except the task hashes it writes or reads, which are asynq's.

// fairLua is the scripts' shared part. KEYS[1] is the tenant's admitted
// set, KEYS[2] its line, KEYS[3] the queue's pending list. promote admits
// waiting tasks while the window (w) has room, skipping ids whose task is
// gone (canceled while waiting), and returns how many.
const fairLua = `
local function promote(w, nowms, nowns, heldPrefix, taskPrefix)
	local n = 0
	while redis.call("ZCARD", KEYS[1]) < w do
		local id = redis.call("LPOP", KEYS[2])
		if not id then break end
		local msg = redis.call("GET", heldPrefix .. id)
		if msg then
			redis.call("HSET", taskPrefix .. id, "msg", msg, "state", "pending", "pending_since", nowns)
			redis.call("LPUSH", KEYS[3], id)
			redis.call("ZADD", KEYS[1], nowms, id)
			redis.call("DEL", heldPrefix .. id)
			n = n + 1
		end
	end
	return n
end
local function wake(n, key, lane, backlog)
	if n > 0 then
		redis.call("LPUSH", key, lane)
		redis.call("LTRIM", key, 0, backlog - 1)
	end
end
`

// admitFair stands in for asynq v0.26's enqueue script (KEYS task, pending;
// ARGV msg, id, now ns; 0 when the id is taken, else 1). KEYS admitted,
// line, pending, window, tenants, task, wake list; ARGV msg, id, now ns,
// window, ttl ms, tenant, held prefix, now ms, lane, wake backlog. It wakes
// a worker only when it queued something.
var admitFair = redis.NewScript(admitFairSource)

const admitFairSource = fairLua + `
if redis.call("EXISTS", KEYS[6]) == 1 or redis.call("EXISTS", ARGV[7] .. ARGV[2]) == 1 then
	return 0
end
local w = tonumber(ARGV[4])
redis.call("SET", KEYS[4], ARGV[4], "PX", ARGV[5])
if redis.call("LLEN", KEYS[2]) == 0 and redis.call("ZCARD", KEYS[1]) < w then
	redis.call("HSET", KEYS[6], "msg", ARGV[1], "state", "pending", "pending_since", ARGV[3])
	redis.call("LPUSH", KEYS[3], ARGV[2])
	redis.call("ZADD", KEYS[1], ARGV[8], ARGV[2])
	wake(1, KEYS[7], ARGV[9], tonumber(ARGV[10]))
else
	redis.call("SET", ARGV[7] .. ARGV[2], ARGV[1], "PX", ARGV[5])
	redis.call("RPUSH", KEYS[2], ARGV[2])
	redis.call("PEXPIRE", KEYS[2], ARGV[5])
	redis.call("SADD", KEYS[5], ARGV[6])
	local n = promote(w, ARGV[8], ARGV[3], ARGV[7], string.sub(KEYS[6], 1, #KEYS[6] - #ARGV[2]))
	wake(n, KEYS[7], ARGV[9], tonumber(ARGV[10]))
end
redis.call("PEXPIRE", KEYS[1], ARGV[5])
return 1`

// releaseFair: KEYS admitted, line, pending, window, wake list; ARGV id,
// now ms, now ns, held prefix, task prefix, lane, wake backlog.
var releaseFair = redis.NewScript(fairLua + `
redis.call("ZREM", KEYS[1], ARGV[1])
local n = promote(tonumber(redis.call("GET", KEYS[4]) or "1"), ARGV[2], ARGV[3], ARGV[4], ARGV[5])
wake(n, KEYS[5], ARGV[6], tonumber(ARGV[7]))
return n`)

// reapFair: KEYS admitted, line, pending, window, wake list, tenants; ARGV
// now ms, now ns, held prefix, task prefix, lane, wake backlog, tenant.
// Admitted tasks that ended or are gone free their places, waiting ones
// that fit are admitted, and a tenant with nothing admitted or waiting
// leaves the tenants set.
var reapFair = redis.NewScript(fairLua + `
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, 255)) do
	local state = redis.call("HGET", ARGV[4] .. id, "state")
	if not state or state == "completed" or state == "archived" then
		redis.call("ZREM", KEYS[1], id)
	end
end
local n = promote(tonumber(redis.call("GET", KEYS[4]) or "1"), ARGV[1], ARGV[2], ARGV[3], ARGV[4])
wake(n, KEYS[5], ARGV[5], tonumber(ARGV[6]))
if redis.call("ZCARD", KEYS[1]) == 0 and redis.call("LLEN", KEYS[2]) == 0 then
	redis.call("SREM", KEYS[6], ARGV[7])
end
return n`)

// Fair is how EnqueueFair admits a task of a pool's async lane: its
// tenant, the tenant's window, and how long its waiting keys live.
type Fair struct {
	Pool, Tenant string
	Window       int
	TTL          time.Duration
}

// fairKeys are the keys every fair script begins with.
func fairKeys(pool, tenant string) []string {
	k := jobs.FairKeys(pool, tenant)
	return []string{k[0], k[1], Key(jobs.Queue(pool, jobs.LaneAsync), "pending"), k[2]}
}

// admit turns asynq's enqueue call cmd (see FollowUpHook) into admitFair's.
func (f *Fair) admit(cmd *redis.Cmd) (*redis.Cmd, bool) {
	args := cmd.Args()
	if len(args) != 8 {
		return nil, false
	}
	name, _ := args[0].(string)
	taskKey, _ := args[3].(string)
	id, _ := args[6].(string)
	if n, _ := args[2].(int); n != 2 || !strings.HasSuffix(taskKey, ":t:"+id) || id == "" {
		return nil, false
	}
	script := admitFair.Hash()
	if name == "eval" {
		script = admitFairSource
	}
	keys := append(fairKeys(f.Pool, f.Tenant), jobs.FairTenantsKey(f.Pool), taskKey, jobs.WakeKey(f.Pool, jobs.LaneAsync))
	call := []any{name, script, len(keys)}
	for _, k := range keys {
		call = append(call, k)
	}
	call = append(call, args[5], id, args[7], max(1, f.Window), max(1, f.TTL.Milliseconds()), f.Tenant,
		jobs.HeldPrefix(f.Pool), time.Now().UnixMilli(), string(jobs.LaneAsync), wakeBacklog)
	return redis.NewCmd(context.Background(), call...), true
}

// FairRelease is a finished task's release queued on a pipeline.
type FairRelease struct {
	cmd  *redis.Cmd
	keys []string
	args []any
}

// ReleaseFair queues on pl the release of task id of tenant on pool's
// async lane: its place is freed and the tenant's waiting tasks that fit
// are queued. Call Done after the pipeline ran.
func ReleaseFair(ctx context.Context, pl redis.Pipeliner, pool, tenant, id string) *FairRelease {
	now := time.Now()
	r := &FairRelease{keys: append(fairKeys(pool, tenant), jobs.WakeKey(pool, jobs.LaneAsync)),
		args: []any{id, now.UnixMilli(), now.UnixNano(), jobs.HeldPrefix(pool),
			TaskKey(jobs.Queue(pool, jobs.LaneAsync), ""), string(jobs.LaneAsync), wakeBacklog}}
	r.cmd = releaseFair.EvalSha(ctx, pl, r.keys, r.args...)
	return r
}

// Done runs the release again, loading the script, if Redis did not have
// it cached, and returns its error.
func (r *FairRelease) Done(ctx context.Context, rdb redis.Scripter) error {
	if err := r.cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return releaseFair.Run(ctx, rdb, r.keys, r.args...).Err()
	}
	return r.cmd.Err()
}

// ReapFair frees, for every tenant of pool with work admitted or waiting,
// the places of tasks that ended without a release, and queues waiting
// tasks that fit. Every worker of the async lane runs it now and then;
// running it twice at once is harmless.
func ReapFair(ctx context.Context, rdb redis.UniversalClient, pool string) error {
	tenants, err := rdb.SMembers(ctx, jobs.FairTenantsKey(pool)).Result()
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tenants {
		now := time.Now()
		keys := append(fairKeys(pool, t), jobs.WakeKey(pool, jobs.LaneAsync), jobs.FairTenantsKey(pool))
		err := reapFair.Run(ctx, rdb, keys, now.UnixMilli(), now.UnixNano(), jobs.HeldPrefix(pool),
			TaskKey(jobs.Queue(pool, jobs.LaneAsync), ""), string(jobs.LaneAsync), wakeBacklog, t).Err()
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}
