package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// followUp is what Enqueue hands FollowUpHook through the context: the
// commands that must follow the task's enqueue script, and, once sent,
// what became of them.
type followUp struct {
	then func(redis.Pipeliner)
	err  error // the first follow-up's error, of the last attempt
	fair *Fair // set by EnqueueFair
}

type followKey struct{}

// Enqueue enqueues task with client and sends then's commands in the same
// round trip, after the enqueue script: Redis runs them in order, so a
// worker woken by one finds the task. client's Redis client must carry
// FollowUpHook; without it the follow-ups are not sent and Enqueue says so.
// Beside the enqueue's own error (asynq.ErrTaskIDConflict, say), Enqueue
// returns an error wrapping ErrFollowUp when the task was enqueued but a
// follow-up failed: the caller decides what that costs.
func Enqueue(ctx context.Context, client *asynq.Client, task *asynq.Task, then func(redis.Pipeliner)) (*asynq.TaskInfo, error) {
	return enqueueWith(ctx, client, task, &followUp{then: then, err: errNotSent})
}

// EnqueueFair is Enqueue for a task of a pool's async lane, admitted
// within its tenant's window or put in the tenant's line (see fair.go).
// Either way the task is accepted: asynq's answer is the same. It wakes a
// worker itself when the task (or another) was queued: then should not.
func EnqueueFair(ctx context.Context, client *asynq.Client, task *asynq.Task, fair Fair, then func(redis.Pipeliner)) (*asynq.TaskInfo, error) {
	return enqueueWith(ctx, client, task, &followUp{then: then, err: errNotSent, fair: &fair})
}

func enqueueWith(ctx context.Context, client *asynq.Client, task *asynq.Task, f *followUp) (*asynq.TaskInfo, error) {
	info, err := client.EnqueueContext(context.WithValue(ctx, followKey{}, f), task)
	if err != nil {
		return nil, err
	}
	if f.err != nil {
		return info, fmt.Errorf("task %s enqueued: %w: %w", info.ID, ErrFollowUp, f.err)
	}
	return info, nil
}

// ErrFollowUp marks an enqueue whose task exists but whose follow-up
// commands did not all succeed.
var ErrFollowUp = errors.New("a follow-up command failed")

var errNotSent = errors.New("not sent: the Redis client lacks FollowUpHook")

// FollowUpHook sends asynq's enqueue script and the commands that follow it
// in one round trip: on the API's client, a script call whose context
// carries follow-up commands (Enqueue puts them there) is sent as a
// pipeline with them. If the script is not cached yet, go-redis retries
// with EVAL and the follow-ups are sent again, which they must tolerate
// (a SET, and a wake list bounded by LTRIM, do). For EnqueueFair it sends
// admitFair in place of asynq's script, with asynq's arguments.
type FollowUpHook struct{ rdb redis.UniversalClient }

// NewFollowUpHook returns the hook for rdb, the client it is added to.
func NewFollowUpHook(rdb redis.UniversalClient) FollowUpHook { return FollowUpHook{rdb: rdb} }

func (h FollowUpHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h FollowUpHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h FollowUpHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		f, ok := ctx.Value(followKey{}).(*followUp)
		if name := cmd.Name(); !ok || (name != "evalsha" && name != "eval") {
			return next(ctx, cmd)
		}
		run, answered, err := f.swap(cmd)
		if err != nil {
			cmd.SetErr(err)
			return err
		}
		cmds, _ := h.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			_ = pl.Process(ctx, run)
			f.then(pl)
			return nil
		})
		answered()
		f.err = nil
		for _, c := range cmds[min(1, len(cmds)):] {
			if err := c.Err(); err != nil {
				f.err = fmt.Errorf("%s: %w", c.Name(), err)
				break
			}
		}
		return cmd.Err()
	}
}

// swap is the command sent for asynq's enqueue call cmd: cmd itself, or
// for EnqueueFair admitFair's call in its place, with answered copying
// that call's answer into cmd, which asynq reads.
func (f *followUp) swap(cmd redis.Cmder) (run redis.Cmder, answered func(), err error) {
	if f.fair == nil {
		return cmd, func() {}, nil
	}
	orig, ok := cmd.(*redis.Cmd)
	var admit *redis.Cmd
	if ok {
		admit, ok = f.fair.admit(orig)
	}
	if !ok {
		return nil, nil, errors.New("fair admission: asynq's enqueue call is not the shape this package knows")
	}
	return admit, func() { orig.SetVal(admit.Val()); orig.SetErr(admit.Err()) }, nil
}
