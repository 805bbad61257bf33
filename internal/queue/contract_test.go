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

// hookedServer runs an asynq server for holder over queue q, with the
// dequeue hook on a client of its own, handling tasks with h.
func hookedServer(t *testing.T, rdb redis.UniversalClient, holder, q string, h asynq.HandlerFunc) *asynq.Server {
	t.Helper()
	c := redis.NewClient(rdb.(*redis.Client).Options())
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(NewDequeueHook(t.Context(), c, holder, "contract", jobs.Lanes, 20*time.Millisecond))
	s := asynq.NewServerFromRedisClient(c, asynq.Config{Concurrency: 4, Queues: map[string]int{q: 1},
		TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour }})
	if err := s.Start(h); err != nil {
		t.Fatal(err)
	}
	return s
}

// Every way asynq moves a task out of the active list (done, complete,
// retry, archive, and the requeue of a stopping server) drops the task's
// holder entry, which the dequeue recorded: the holders hash names only
// tasks a worker really holds.
func TestHoldersFollowAsynq(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	q := jobs.Queue("contract", jobs.LaneAsync)
	c := asynq.NewClientFromRedisClient(rdb)
	running, release := make(chan string, 8), make(chan struct{})
	s := hookedServer(t, rdb, "w1", q, func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		running <- id
		if id == "requeue" {
			<-ctx.Done() // handed back by Shutdown
			return ctx.Err()
		}
		<-release
		switch string(task.Payload()) {
		case "retry":
			return errors.New("again later")
		case "archive":
			return asynq.SkipRetry
		}
		return nil
	})
	for id, opts := range map[string][]asynq.Option{
		"done": nil, "complete": {asynq.Retention(time.Hour)}, "retry": {asynq.MaxRetry(3)}, "archive": nil, "requeue": nil,
	} {
		payload := id
		if _, err := c.Enqueue(asynq.NewTask("t", []byte(payload)), append(opts, asynq.Queue(q), asynq.TaskID(id))...); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 4 {
		seen[<-running] = true
	}
	held := rdb.HGetAll(ctx, HoldersKey(q)).Val()
	for id := range seen {
		if held[id] != "w1" {
			t.Errorf("holders while four tasks run: %v, want each of %v held by w1", held, seen)
		}
	}
	close(release)
	for !seen["requeue"] {
		seen[<-running] = true
	}
	eventually(t, func() bool { return rdb.LLen(ctx, Key(q, "active")).Val() == 1 }, "tasks never left the active list")
	s.Shutdown()
	if got := rdb.HGetAll(ctx, HoldersKey(q)).Val(); len(got) != 0 {
		t.Errorf("holders after every task left the active list: %v", got)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for id, want := range map[string]asynq.TaskState{"complete": asynq.TaskStateCompleted, "retry": asynq.TaskStateRetry,
		"archive": asynq.TaskStateArchived, "requeue": asynq.TaskStatePending} {
		if info, err := insp.GetTaskInfo(q, id); err != nil || info.State != want {
			t.Errorf("task %s: %v %v, want %v", id, info, err, want)
		}
	}
}

// Reclaim hands a dead holder's active task back as asynq's requeue
// would: another server takes and completes it, the inspector reads it
// completed, and the first holder finishing late (a worker that was only
// cut off) changes nothing. A task reclaimed MaxReclaims times is left
// to asynq's recoverer.
func TestReclaimHandsBackToAsynq(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	q := jobs.Queue("contract", jobs.LaneSync)
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("t", nil), asynq.Queue(q),
		asynq.TaskID("held"), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	taken, late := make(chan struct{}), make(chan struct{})
	first := hookedServer(t, rdb, "gone", q, func(context.Context, *asynq.Task) error {
		close(taken)
		<-late
		return nil
	})
	<-taken
	if n, err := Reclaim(ctx, rdb, q, []string{"someone-else"}); n != 0 || err != nil {
		t.Fatalf("reclaim for a worker holding nothing: %d %v", n, err)
	}
	if n, err := Reclaim(ctx, rdb, q, []string{"gone"}); n != 1 || err != nil {
		t.Fatalf("reclaim: %d %v, want the one task", n, err)
	}
	if n, _ := Reclaim(ctx, rdb, q, []string{"gone"}); n != 0 {
		t.Fatalf("a second reclaim handed back %d more", n)
	}
	ran := make(chan struct{})
	second := hookedServer(t, rdb, "second", q, func(context.Context, *asynq.Task) error { close(ran); return nil })
	defer second.Shutdown()
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("the reclaimed task never ran again")
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	eventually(t, func() bool {
		info, err := insp.GetTaskInfo(q, "held")
		return err == nil && info.State == asynq.TaskStateCompleted
	}, "the reclaimed task never read completed")
	close(late)
	first.Shutdown()
	if info, err := insp.GetTaskInfo(q, "held"); err != nil || info.State != asynq.TaskStateCompleted {
		t.Errorf("after the first holder finished late: %v %v", info, err)
	}

	// What a task that killed MaxReclaims workers leaves: active, held by
	// the dead, its reclaims counted.
	_, err := rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.LPush(ctx, Key(q, "active"), "poison")
		pl.ZAdd(ctx, Key(q, "lease"), redis.Z{Score: float64(time.Now().Add(time.Minute).Unix()), Member: "poison"})
		pl.HSet(ctx, TaskKey(q, "poison"), "state", "active", "reclaims", MaxReclaims)
		pl.HSet(ctx, HoldersKey(q), "poison", "gone")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Reclaim(ctx, rdb, q, []string{"gone"}); n != 0 || err != nil {
		t.Errorf("a task past MaxReclaims was handed back again: %d %v", n, err)
	}
	if rdb.ZScore(ctx, Key(q, "lease"), "poison").Err() != nil || rdb.HExists(ctx, HoldersKey(q), "poison").Val() {
		t.Error("the poison task should stay active for asynq's recoverer, its dead holder dropped")
	}
}

func eventually(t *testing.T, ok func() bool, msg string) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal(msg)
		}
	}
}
