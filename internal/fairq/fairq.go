package fairq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// promoteLua admits waiting jobs while the window (w) has room: KEYS[1] is
// the tenant's admitted set, KEYS[2] its waiting list; a waiting id whose
// job is gone (canceled) is dropped. It returns id, job, id, job, ...
const promoteLua = `
local function promote(w, now, prefix)
	local out = {}
	while redis.call("ZCARD", KEYS[1]) < w do
		local id = redis.call("LPOP", KEYS[2])
		if not id then break end
		local job = redis.call("GET", prefix .. id)
		if job then
			redis.call("ZADD", KEYS[1], now, id)
			out[#out + 1] = id
			out[#out + 1] = job
		end
	end
	return out
end
`

// admit: KEYS admitted, held, window, the job's held key, tenants;
// ARGV id, now, window, job, ttl (ms), tenant, held prefix. A job is
// admitted at once when nothing of its tenant waits and the window has
// room ({"1"}); else it waits behind the others, and any that fit now are
// admitted ({"0", id, job, ...}).
var admitScript = redis.NewScript(promoteLua + `
redis.call("SET", KEYS[3], ARGV[3], "PX", ARGV[5])
local w = tonumber(ARGV[3])
if redis.call("LLEN", KEYS[2]) == 0 and redis.call("ZCARD", KEYS[1]) < w then
	redis.call("ZADD", KEYS[1], ARGV[2], ARGV[1])
	redis.call("PEXPIRE", KEYS[1], ARGV[5])
	return {"1"}
end
redis.call("SET", KEYS[4], ARGV[4], "PX", ARGV[5])
redis.call("RPUSH", KEYS[2], ARGV[1])
redis.call("PEXPIRE", KEYS[1], ARGV[5])
redis.call("PEXPIRE", KEYS[2], ARGV[5])
redis.call("SADD", KEYS[5], ARGV[6])
local out = promote(w, ARGV[2], ARGV[7])
table.insert(out, 1, "0")
return out`)

// release: KEYS admitted, held, window; ARGV id, now, held prefix. The
// job's place is freed and waiting jobs that fit are admitted.
var releaseScript = redis.NewScript(promoteLua + `
redis.call("ZREM", KEYS[1], ARGV[1])
return promote(tonumber(redis.call("GET", KEYS[3]) or "1"), ARGV[2], ARGV[3])`)

// reap: KEYS admitted, held, window, tenants; ARGV now, held prefix,
// stale (ms: admitted before it and without a task means the task was
// never enqueued), task key prefix, tenant. Admitted jobs whose task ended
// free their place; those whose task was never enqueued but whose job is
// still held are returned to be enqueued again, with the jobs admitted
// now. A tenant with nothing admitted or waiting leaves the tenants set.
var reapScript = redis.NewScript(promoteLua + `
local again = {}
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, 255)) do
	local state = redis.call("HGET", ARGV[4] .. id, "state")
	if state == "completed" or state == "archived" then
		redis.call("ZREM", KEYS[1], id)
		redis.call("DEL", ARGV[2] .. id)
	elseif not state and tonumber(redis.call("ZSCORE", KEYS[1], id)) < tonumber(ARGV[3]) then
		local job = redis.call("GET", ARGV[2] .. id)
		if job then
			again[#again + 1] = id
			again[#again + 1] = job
		else
			redis.call("ZREM", KEYS[1], id)
		end
	end
end
for _, v in ipairs(promote(tonumber(redis.call("GET", KEYS[3]) or "1"), ARGV[1], ARGV[2])) do
	again[#again + 1] = v
end
if redis.call("ZCARD", KEYS[1]) == 0 and redis.call("LLEN", KEYS[2]) == 0 then
	redis.call("SREM", KEYS[4], ARGV[5])
end
return again`)

// Admission is where a new async job stands after Admit.
type Admission struct {
	// Now: the job's place is taken, and its caller enqueues its task.
	// Otherwise it waits, whole in Redis, for room.
	Now bool
	// Admitted are other waiting jobs of the tenant that fit now: the
	// caller enqueues them with Queue.
	Admitted []Held
}

// Held is a waiting job just admitted: its id and jobs.HeldJob.
type Held struct {
	ID, Job string
}

// Job is a new async job of tenant in pool: its id, its jobs.HeldJob (kept
// if it must wait), the tenant's window, and how long waiting keys live.
type Job struct {
	Pool, Tenant, ID string
	Held             []byte
	Window           int
	TTL              time.Duration
}

// Admit takes j's place in its tenant's window, or puts it in line. before
// queues commands sent first in the same round trip (the job's record).
func Admit(ctx context.Context, rdb redis.UniversalClient, j Job, before func(redis.Pipeliner)) (Admission, error) {
	k := jobs.FairKeys(j.Pool, j.Tenant)
	keys := []string{k[0], k[1], k[2], jobs.HeldKey(j.Pool, j.ID), jobs.FairTenantsKey(j.Pool)}
	args := []any{j.ID, time.Now().UnixMilli(), max(1, j.Window), j.Held, max(1, j.TTL.Milliseconds()), j.Tenant, jobs.HeldPrefix(j.Pool)}
	var run *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		if before != nil {
			before(pl)
		}
		run = admitScript.EvalSha(ctx, pl, keys, args...)
		return nil
	})
	if err != nil && isNoScript(run.Err()) {
		run = admitScript.Run(ctx, rdb, keys, args...) // loads it; the commands before are idempotent writes, sent once already
		err = run.Err()
	}
	if err != nil {
		return Admission{}, err
	}
	out, err := run.StringSlice()
	if err != nil || len(out) == 0 {
		return Admission{}, fmt.Errorf("fair admission answered %v: %v", out, err)
	}
	return Admission{Now: out[0] == "1", Admitted: pairs(out[1:])}, nil
}

// Release frees job id's place in tenant's window (its task is done or
// canceled) and enqueues the waiting jobs that fit now.
func Release(ctx context.Context, rdb redis.UniversalClient, client *asynq.Client, pool, tenant, id string) error {
	k := jobs.FairKeys(pool, tenant)
	out, err := releaseScript.Run(ctx, rdb, k[:], id, time.Now().UnixMilli(), jobs.HeldPrefix(pool)).StringSlice()
	if err != nil {
		return err
	}
	return Queue(ctx, rdb, client, pool, pairs(out))
}

// Unadmit frees the place Admit took for a job whose task could not be
// enqueued (its caller was told so), admitting none: the next release or
// Reap does.
func Unadmit(ctx context.Context, rdb redis.UniversalClient, pool, tenant, id string) error {
	return rdb.ZRem(ctx, jobs.FairKeys(pool, tenant)[0], id).Err()
}

// Queue enqueues admitted jobs' tasks on pool's async lane, drops their
// held copies and wakes a worker. A job whose task exists already is
// done; one that fails to enqueue stays held for Reap.
func Queue(ctx context.Context, rdb redis.UniversalClient, client *asynq.Client, pool string, admitted []Held) error {
	var done []string
	var errs []error
	for _, h := range admitted {
		task, err := heldTask(pool, h)
		if err != nil { // it can never run: drop it, and Reap frees its place
			errs = append(errs, fmt.Errorf("held job %s: %w", h.ID, err))
			done = append(done, jobs.HeldKey(pool, h.ID))
			continue
		}
		if _, err := client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			errs = append(errs, fmt.Errorf("queue held job %s: %w", h.ID, err))
			continue
		}
		done = append(done, jobs.HeldKey(pool, h.ID))
	}
	if len(done) > 0 {
		_, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			pl.Unlink(ctx, done...)
			queue.Wake(ctx, pl, pool, jobs.LaneAsync)
			return nil
		})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Reap repairs pool's windows after processes died mid-way (see the
// package doc): a job admitted over stale ago whose task does not exist is
// enqueued again, places of tasks that ended are freed, and waiting jobs
// that fit are admitted. Every worker runs it now and then; running it
// twice at once is harmless.
func Reap(ctx context.Context, rdb redis.UniversalClient, client *asynq.Client, pool string, stale time.Duration) error {
	tenants, err := rdb.SMembers(ctx, jobs.FairTenantsKey(pool)).Result()
	if err != nil {
		return err
	}
	now := time.Now()
	taskPrefix := queue.TaskKey(jobs.Queue(pool, jobs.LaneAsync), "")
	var errs []error
	for _, t := range tenants {
		k := jobs.FairKeys(pool, t)
		keys := []string{k[0], k[1], k[2], jobs.FairTenantsKey(pool)}
		out, err := reapScript.Run(ctx, rdb, keys, now.UnixMilli(), jobs.HeldPrefix(pool), now.Add(-stale).UnixMilli(), taskPrefix, t).StringSlice()
		if err == nil {
			err = Queue(ctx, rdb, client, pool, pairs(out))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

func heldTask(pool string, h Held) (*asynq.Task, error) {
	var j jobs.HeldJob
	if err := json.Unmarshal([]byte(h.Job), &j); err != nil {
		return nil, err
	}
	return j.Task(pool)
}

// pairs reads a script's id, job, id, job, ... answer.
func pairs(flat []string) []Held {
	out := make([]Held, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		out = append(out, Held{ID: flat[i], Job: flat[i+1]})
	}
	return out
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }
