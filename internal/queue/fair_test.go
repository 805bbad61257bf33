package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

const fairPool = "fair"

// fairLane is one test's Redis (with FollowUpHook), asynq client and
// inspector on fairPool's async lane.
type fairLane struct {
	t      *testing.T
	rdb    redis.UniversalClient
	client *asynq.Client
	insp   *asynq.Inspector
	q      string
}

func newFairLane(t *testing.T) *fairLane {
	rdb := redistest.Client(t, srv)
	rdb.AddHook(NewFollowUpHook(rdb))
	return &fairLane{t: t, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb),
		insp: asynq.NewInspectorFromRedisClient(rdb), q: jobs.Queue(fairPool, jobs.LaneAsync)}
}

// submit enqueues task id of tenant with window, as the API does.
func (l *fairLane) submit(tenant, id string, window int) {
	l.t.Helper()
	task := asynq.NewTask("t", []byte(id), asynq.Queue(l.q), asynq.TaskID(id), asynq.Retention(time.Hour))
	fair := Fair{Pool: fairPool, Tenant: tenant, Window: window, TTL: time.Hour}
	if _, err := EnqueueFair(l.t.Context(), l.client, task, fair, func(redis.Pipeliner) {}); err != nil {
		l.t.Fatalf("enqueue %s: %v", id, err)
	}
}

// queued is the async queue's pending task ids, oldest first.
func (l *fairLane) queued() []string {
	l.t.Helper()
	tasks, err := l.insp.ListPendingTasks(l.q, asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		l.t.Fatal(err)
	}
	ids := make([]string, len(tasks))
	for i, ti := range tasks {
		ids[i] = ti.ID
	}
	return ids
}

// take runs the oldest queued task and releases its place as a worker
// does, returning its id.
func (l *fairLane) take() string {
	l.t.Helper()
	q := l.queued()
	if len(q) == 0 {
		l.t.Fatal("nothing queued")
	}
	id := q[0]
	if err := l.insp.DeleteTask(l.q, id); err != nil {
		l.t.Fatal(err)
	}
	ctx := l.t.Context()
	var r *FairRelease
	if _, err := l.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		r = ReleaseFair(ctx, pl, fairPool, id[:1], id)
		return nil
	}); err != nil && r.Done(ctx, l.rdb) != nil {
		l.t.Fatal(err)
	}
	return id
}

func TestFairWindowBoundsATenantsQueuedTasks(t *testing.T) {
	l := newFairLane(t)
	for i := range 5 {
		l.submit("a", fmt.Sprint("a", i), 2)
	}
	l.submit("b", "b0", 2)
	// b's first task is queued at once beside a's two, not behind a's five.
	if got, want := l.queued(), []string{"a0", "a1", "b0"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	// A waiting task is accepted: its id is taken.
	task := asynq.NewTask("t", nil, asynq.Queue(l.q), asynq.TaskID("a4"))
	if _, err := EnqueueFair(t.Context(), l.client, task, Fair{Pool: fairPool, Tenant: "a", Window: 2, TTL: time.Hour},
		func(redis.Pipeliner) {}); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Fatalf("a second enqueue of waiting a4: %v, want ErrTaskIDConflict", err)
	}
	// Each task done admits its tenant's next, in order, at the queue's
	// tail, with asynq's own state: the inspector reads it as pending.
	if id := l.take(); id != "a0" {
		t.Fatalf("took %s", id)
	}
	if got, want := l.queued(), []string{"a1", "b0", "a2"}; !slices.Equal(got, want) {
		t.Fatalf("after a0 done, queued %v, want %v", got, want)
	}
	if info, err := l.insp.GetTaskInfo(l.q, "a2"); err != nil || info.State != asynq.TaskStatePending || string(info.Payload) != "a2" {
		t.Fatalf("a2 once admitted: %+v, %v; want pending with its payload", info, err)
	}
	n, err := l.rdb.Exists(t.Context(), jobs.HeldKey(fairPool, "a2"), jobs.HeldKey(fairPool, "a3")).Result()
	if err != nil || n != 1 {
		t.Fatalf("held copies left of a2 and a3: %d (%v), want a3's only", n, err)
	}
}

// Windows of 1 and 3 (weights 1 and 3): while both have work waiting,
// each task done admits its tenant's next at the queue's tail, so the
// queue's turns go to the tenants in proportion to their windows.
func TestFairWeightsShareTheQueue(t *testing.T) {
	l := newFairLane(t)
	for i := range 20 {
		l.submit("a", fmt.Sprint("a", i), 1)
		l.submit("c", fmt.Sprint("c", i), 3)
	}
	done := map[byte]int{}
	for range 16 {
		done[l.take()[0]]++
	}
	if done['a'] != 4 || done['c'] != 12 {
		t.Fatalf("of 16 tasks run, a (window 1) had %d and c (window 3) %d; want 4 and 12", done['a'], done['c'])
	}
}

func TestFairCanceledWaitingTaskNeverQueues(t *testing.T) {
	l := newFairLane(t)
	for i := range 3 {
		l.submit("a", fmt.Sprint("a", i), 1)
	}
	// The API cancels a waiting task by dropping its held copy.
	if err := l.rdb.Unlink(t.Context(), jobs.HeldKey(fairPool, "a1")).Err(); err != nil {
		t.Fatal(err)
	}
	l.take()
	if got := l.queued(); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("after a0 done, queued %v, want a2 (a1 was canceled)", got)
	}
}

// A task that ended without a release (retried out, deleted, its worker
// gone) holds its place until a reap, which frees it and admits the next.
func TestFairReapFreesPlacesOfEndedTasks(t *testing.T) {
	l := newFairLane(t)
	ctx := context.Background()
	for i := range 5 {
		l.submit("a", fmt.Sprint("a", i), 2)
	}
	// a0 is deleted (a cancel) and a1 archived, neither released.
	if err := l.insp.DeleteTask(l.q, "a0"); err != nil {
		t.Fatal(err)
	}
	if err := l.insp.ArchiveTask(l.q, "a1"); err != nil {
		t.Fatal(err)
	}
	if got := l.queued(); len(got) != 0 {
		t.Fatalf("queued %v before the reap, want none: the window is still taken", got)
	}
	if err := ReapFair(ctx, l.rdb, fairPool); err != nil {
		t.Fatal(err)
	}
	if got := l.queued(); !slices.Equal(got, []string{"a2", "a3"}) {
		t.Fatalf("after the reap, queued %v, want a2 and a3", got)
	}
	if n, _ := l.rdb.LLen(ctx, jobs.WakeKey(fairPool, jobs.LaneAsync)).Result(); n == 0 {
		t.Fatal("the reap queued tasks without waking a worker")
	}
	// Once nothing is admitted or waiting, the tenant leaves the reap's set.
	for range 3 {
		l.take()
	}
	if err := ReapFair(ctx, l.rdb, fairPool); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.rdb.SCard(ctx, jobs.FairTenantsKey(fairPool)).Result(); n != 0 {
		t.Fatalf("%d tenants left in the reap's set, want 0", n)
	}
}
