package queue

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// The contract between this package and asynq: each test below fails when
// the asynq linked is not the one the package was written against, or
// when that asynq stops using the layout and script shapes relied on here.

func TestAsynqVersionIsTheReviewedOne(t *testing.T) {
	// Test binaries carry no dependency list in their build info; ask the
	// go command which asynq the module builds with.
	out, err := exec.Command("go", "list", "-m", "-f", "{{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}",
		"github.com/hibiken/asynq").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if v := strings.TrimSpace(string(out)); v != AsynqVersion {
		t.Fatalf("asynq %s is required; this package knows %s's Redis layout and scripts. Review dequeue.go, memguard.go, enqueue.go and layout.go against the new version, then update AsynqVersion.", v, AsynqVersion)
	}
}

// shapeCounter counts the script calls this package recognises by shape.
type shapeCounter struct{ dequeues, memory atomic.Int64 }

func (c *shapeCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *shapeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *shapeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if _, ok := dequeueQueue(cmd); ok {
			c.dequeues.Add(1)
		}
		if isMemoryUsageScript(cmd) {
			c.memory.Add(1)
		}
		return next(ctx, cmd)
	}
}

// asynq's own client, server and inspector, with no hook of ours between
// them and Redis but a counter, keep tasks where Key and TaskKey say, make
// the dequeue and memory-usage calls the hooks recognise, and read back a
// result written by StoreResult.
func TestAsynqLayoutAndScriptShapes(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	seen := &shapeCounter{}
	rdb.AddHook(seen)
	q := jobs.Queue("contract", jobs.LaneSync)

	c := asynq.NewClientFromRedisClient(rdb)
	info, err := c.Enqueue(asynq.NewTask("t", []byte("x")), asynq.Queue(q), asynq.TaskID("one"), asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if msg := rdb.HGet(ctx, TaskKey(q, info.ID), "msg").Val(); msg == "" {
		t.Errorf("no message at %s", TaskKey(q, info.ID))
	}
	if ids := rdb.LRange(ctx, Key(q, "pending"), 0, -1).Val(); len(ids) != 1 || ids[0] != info.ID {
		t.Errorf("%s holds %v, want [%s]", Key(q, "pending"), ids, info.ID)
	}

	done := make(chan struct{})
	s := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{q: 1},
		TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := s.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		defer close(done)
		_, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			StoreResult(ctx, pl, q, task.ResultWriter().TaskID(), []byte("stored here"))
			return nil
		})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the task never ran")
	}
	if seen.dequeues.Load() == 0 {
		t.Error("asynq's dequeue calls no longer have the shape DequeueHook recognises")
	}

	insp := asynq.NewInspectorFromRedisClient(rdb)
	var got *asynq.TaskInfo
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got, err = insp.GetTaskInfo(q, info.ID); err == nil && got.State == asynq.TaskStateCompleted {
			break
		}
	}
	if got == nil || string(got.Result) != "stored here" {
		t.Errorf("Inspector reads result %q (err %v), want what StoreResult wrote", resultOf(got), err)
	}
	if _, err := insp.GetQueueInfo(q); err != nil {
		t.Fatal(err)
	}
	if seen.memory.Load() == 0 {
		t.Error("asynq's memory-usage call no longer has the shape MemGuard recognises")
	}
}

func resultOf(ti *asynq.TaskInfo) []byte {
	if ti == nil {
		return nil
	}
	return ti.Result
}

// MemGuard is what keeps a queue read working when a retained task's hash
// has expired before its id left the completed set; without it, asynq's
// memory-usage script fails the read.
func TestMemGuardKeepsQueueReadsWorking(t *testing.T) {
	for _, guarded := range []bool{false, true} {
		rdb := redistest.Client(t, srv)
		if guarded {
			rdb.AddHook(MemGuard{})
		}
		q := jobs.Queue("memguard", jobs.LaneAsync)
		ctx := t.Context()
		// A completed task as asynq leaves it, then its hash gone early.
		rdb.ZAdd(ctx, Key(q, "completed"), redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: "gone"})
		rdb.SAdd(ctx, "asynq:queues", q)
		_, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(q)
		if guarded && err != nil {
			t.Errorf("guarded: %v", err)
		}
		if !guarded && err == nil {
			t.Error("unguarded, the read did not fail: the guard may no longer be needed (or the case no longer arises)")
		}
		rdb.FlushDB(ctx)
	}
}

// Enqueue sends the follow-ups after the task, and says when one failed
// while the task was enqueued, or when the client cannot send them.
func TestEnqueueReportsFollowUps(t *testing.T) {
	rdb := redistest.Client(t, srv)
	rdb.AddHook(NewFollowUpHook(rdb))
	ctx := t.Context()
	c := asynq.NewClientFromRedisClient(rdb)
	q := jobs.Queue("follow", jobs.LaneSync)
	task := func(id string) *asynq.Task {
		return asynq.NewTask("t", nil, asynq.Queue(q), asynq.TaskID(id))
	}

	if _, err := Enqueue(ctx, c, task("a"), func(pl redis.Pipeliner) { pl.Set(ctx, "record:a", "1", time.Minute) }); err != nil {
		t.Fatal(err)
	}
	if rdb.Get(ctx, "record:a").Val() != "1" {
		t.Error("follow-up not sent")
	}

	rdb.Set(ctx, "not-a-number", "x", 0)
	_, err := Enqueue(ctx, c, task("b"), func(pl redis.Pipeliner) {
		pl.Set(ctx, "record:b", "1", time.Minute)
		pl.Incr(ctx, "not-a-number")
	})
	if !errors.Is(err, ErrFollowUp) || rdb.Exists(ctx, TaskKey(q, "b")).Val() != 1 {
		t.Errorf("a failed follow-up: err %v, task exists %d; want ErrFollowUp and the task", err, rdb.Exists(ctx, TaskKey(q, "b")).Val())
	}

	if _, err := Enqueue(ctx, c, task("a"), func(redis.Pipeliner) {}); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("a second enqueue of a: %v, want ErrTaskIDConflict", err)
	}

	bare := redistest.Client(t, srv) // no FollowUpHook
	if _, err := Enqueue(ctx, asynq.NewClientFromRedisClient(bare), task("c"), func(redis.Pipeliner) {}); !errors.Is(err, ErrFollowUp) {
		t.Errorf("without the hook: %v, want ErrFollowUp", err)
	}
}
