package queue

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// scriptCounter counts the dequeue scripts that reach Redis: added after
// the wake hook, it sees what the wake hook sends below itself.
type scriptCounter struct{ evals atomic.Int64 }

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if name := cmd.Name(); (name == "evalsha" || name == "eval") && len(args) > 3 {
			if k, _ := args[3].(string); strings.HasSuffix(k, "}:pending") {
				c.evals.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}

// consume runs an asynq server with the wake hook over pool's lanes, one
// task at a time, recording each task's queue, until n tasks ran.
func consume(t *testing.T, rdb redis.UniversalClient, pool string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb.AddHook(NewDequeueHook(ctx, rdb, "consumer", pool, jobs.Lanes, 50*time.Millisecond))
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	s := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 1, Queues: jobs.Queues(pool), TaskCheckInterval: time.Millisecond,
		LogLevel: asynq.FatalLevel,
	})
	err := s.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		q, _ := asynq.GetQueueName(ctx)
		mu.Lock()
		defer mu.Unlock()
		if got = append(got, q); len(got) == n {
			close(done)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of %d tasks ran", len(got), n)
	}
	return got
}

func enqueue(t *testing.T, rdb redis.UniversalClient, pool string, lane jobs.Lane, n int) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(rdb)
	for i := range n {
		if _, err := c.Enqueue(asynq.NewTask("t", []byte(fmt.Sprint(i))), asynq.Queue(jobs.Queue(pool, lane))); err != nil {
			t.Fatal(err)
		}
	}
}

// A worker whose traffic is all in one lane takes each task with one
// dequeue script call, not one per queue asynq tries.
func TestDequeueOneCallPerTask(t *testing.T) {
	rdb := redistest.Client(t, srv)
	enqueue(t, rdb, "one", jobs.LaneSync, 40)
	count := &scriptCounter{}
	rdb.AddHook(count)
	got := consume(t, rdb, "one", 40)
	// 40 tasks, plus the empty rounds asynq runs after the last one while
	// the test shuts it down (each one call, then a wait on the wake list).
	if n := count.evals.Load(); n < 40 || n > 40+5 {
		t.Errorf("%d dequeue script calls for 40 tasks, want 40 (+ a few empty rounds)", n)
	}
	for _, q := range got {
		if q != "one:sync" {
			t.Fatalf("task from %s", q)
		}
	}
}

// With every lane full, tasks are taken in asynq's weighted proportions
// (sync 6, async 3, batch 1), so neither lane starves.
func TestDequeueKeepsWeights(t *testing.T) {
	rdb := redistest.Client(t, srv)
	for _, l := range jobs.Lanes {
		enqueue(t, rdb, "mix", l, 400)
	}
	got := consume(t, rdb, "mix", 400)
	share := map[string]float64{}
	for _, q := range got {
		share[q] += 1.0 / float64(len(got))
	}
	for q, want := range map[string]float64{"mix:sync": 0.6, "mix:async": 0.3, "mix:batch": 0.1} {
		// Five standard deviations of a binomial share over 400 draws.
		if tol := 5 * math.Sqrt(want*(1-want)/400); math.Abs(share[q]-want) > tol {
			t.Errorf("%s took %.3f of the tasks, want %.2f ± %.3f", q, share[q], want, tol)
		}
	}
}

// A paused queue is skipped, as asynq's own script skips it.
func TestDequeueSkipsPausedQueue(t *testing.T) {
	rdb := redistest.Client(t, srv)
	enqueue(t, rdb, "pz", jobs.LaneSync, 5)
	enqueue(t, rdb, "pz", jobs.LaneAsync, 5)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := insp.PauseQueue("pz:sync"); err != nil {
		t.Fatal(err)
	}
	for _, q := range consume(t, rdb, "pz", 5) {
		if q != "pz:async" {
			t.Fatalf("task from %s while it was paused", q)
		}
	}
	if info, err := insp.GetQueueInfo("pz:sync"); err != nil || info.Pending != 5 {
		t.Fatalf("paused queue: %+v %v, want its 5 tasks pending", info, err)
	}
}

// The hook's script leaves a task in the state asynq's own dequeue script
// does: compare a task taken by a plain asynq server with one taken
// through the hook, field by field.
func TestDequeueStateMatchesAsynq(t *testing.T) {
	rdb := redistest.Client(t, srv)
	state := func(pool string, hooked bool) map[string]string {
		c := redis.NewClient(rdb.(*redis.Client).Options())
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if hooked {
			c.AddHook(NewDequeueHook(ctx, c, "consumer", pool, jobs.Lanes, 50*time.Millisecond))
		}
		id := pool + "-task"
		if _, err := asynq.NewClientFromRedisClient(c).Enqueue(asynq.NewTask("t", []byte("x")),
			asynq.Queue(jobs.Queue(pool, jobs.LaneAsync)), asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
		running, release := make(chan struct{}), make(chan struct{})
		s := asynq.NewServerFromRedisClient(c, asynq.Config{Concurrency: 1, Queues: jobs.Queues(pool), LogLevel: asynq.FatalLevel})
		if err := s.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			close(running)
			<-release
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown()
		defer close(release)
		<-running
		q := jobs.Queue(pool, jobs.LaneAsync)
		out, err := c.HGetAll(ctx, TaskKey(q, id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		delete(out, "msg") // carries the queue name
		lease, _ := c.ZScore(ctx, Key(q, "lease"), id).Result()
		out["lease in s"] = fmt.Sprint(math.Round(lease - float64(time.Now().Unix())))
		active, _ := c.LRange(ctx, Key(q, "active"), 0, -1).Result()
		out["active"] = strings.ReplaceAll(strings.Join(active, ","), pool, "POOL")
		out["pending"] = fmt.Sprint(c.LLen(ctx, Key(q, "pending")).Val())
		return out
	}
	plain, hooked := state("plain", false), state("hooked", true)
	if fmt.Sprint(plain) != fmt.Sprint(hooked) {
		t.Errorf("task state after asynq's dequeue:\n  %v\nafter the hook's:\n  %v", plain, hooked)
	}
	if plain["state"] != "active" {
		t.Errorf("state %q, want active", plain["state"])
	}
}
