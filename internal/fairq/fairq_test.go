package fairq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/fairq"
	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

const pool = "default"

// lane is one test's Redis, asynq client and inspector, and a tenant's
// jobs admitted with a window.
type lane struct {
	t      *testing.T
	rdb    redis.UniversalClient
	client *asynq.Client
	insp   *asynq.Inspector
}

func newLane(t *testing.T) *lane {
	rdb := redistest.Client(t, srv)
	return &lane{t: t, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb)}
}

// submit admits job id of tenant as the API does: the admitted job's task
// is enqueued, the waiting ones admitted with it too. It reports whether
// id itself was admitted at once.
func (l *lane) submit(tenant, id string, window int) bool {
	l.t.Helper()
	ctx := context.Background()
	p := jobs.PredictPayload{RequestID: id, Tenant: tenant, ModelID: "21", Inputs: []byte(`{}`)}
	opts := jobs.TaskOptions{Pool: pool, Lane: jobs.LaneAsync, Retention: time.Hour, MaxRetry: 3}
	held, err := jobs.NewHeldJob(p, opts)
	if err != nil {
		l.t.Fatal(err)
	}
	adm, err := fairq.Admit(ctx, l.rdb, fairq.Job{Pool: pool, Tenant: tenant, ID: id, Held: held, Window: window, TTL: time.Hour}, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	if adm.Now {
		task, err := jobs.NewPredictTask(p, opts)
		if err != nil {
			l.t.Fatal(err)
		}
		if _, err := l.client.Enqueue(task); err != nil {
			l.t.Fatal(err)
		}
	}
	if err := fairq.Queue(ctx, l.rdb, l.client, pool, adm.Admitted); err != nil {
		l.t.Fatal(err)
	}
	return adm.Now
}

// queued is the async queue's pending task ids, oldest first.
func (l *lane) queued() []string {
	l.t.Helper()
	tasks, err := l.insp.ListPendingTasks(jobs.Queue(pool, jobs.LaneAsync), asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		l.t.Fatal(err)
	}
	ids := make([]string, len(tasks))
	for i, ti := range tasks {
		ids[i] = ti.ID
	}
	return ids
}

// take runs the oldest queued task to completion as a worker would, and
// releases its place.
func (l *lane) take(tenant string) string {
	l.t.Helper()
	q := l.queued()
	if len(q) == 0 {
		l.t.Fatal("nothing queued")
	}
	id := q[0]
	if err := l.insp.DeleteTask(jobs.Queue(pool, jobs.LaneAsync), id); err != nil {
		l.t.Fatal(err)
	}
	if err := fairq.Release(context.Background(), l.rdb, l.client, pool, tenant, id); err != nil {
		l.t.Fatal(err)
	}
	return id
}

func TestWindowBoundsATenantsQueuedJobs(t *testing.T) {
	l := newLane(t)
	var now []bool
	for i := range 5 {
		now = append(now, l.submit("a", fmt.Sprint("a", i), 2))
	}
	if !slices.Equal(now, []bool{true, true, false, false, false}) {
		t.Fatalf("admitted at once: %v, want the first 2 of a window of 2", now)
	}
	// Another tenant's job is queued at once beside a's two, not behind a's five.
	if !l.submit("b", "b0", 2) {
		t.Fatal("b's first job waited behind another tenant's")
	}
	if got, want := l.queued(), []string{"a0", "a1", "b0"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	// Each job done admits the tenant's next, in order, at the queue's tail.
	if id := l.take("a"); id != "a0" {
		t.Fatalf("took %s", id)
	}
	if got, want := l.queued(), []string{"a1", "b0", "a2"}; !slices.Equal(got, want) {
		t.Fatalf("after a0 done, queued %v, want %v", got, want)
	}
	n, err := l.rdb.Exists(context.Background(), jobs.HeldKey(pool, "a2"), jobs.HeldKey(pool, "a3")).Result()
	if err != nil || n != 1 {
		t.Fatalf("held copies left of a2, a3: %d (%v), want a3's only", n, err)
	}
}

func TestWeightsShareTheQueue(t *testing.T) {
	// Windows of 1 and 3 (weights 1 and 3): while both have work waiting,
	// each job done admits its tenant's next at the queue's tail, so the
	// queue's turns go to the tenants in proportion to their windows.
	l := newLane(t)
	for i := range 20 {
		l.submit("a", fmt.Sprint("a", i), 1)
		l.submit("c", fmt.Sprint("c", i), 3)
	}
	done := map[byte]int{}
	for range 16 {
		q := l.queued()
		tenant := q[0][:1]
		l.take(tenant)
		done[tenant[0]]++
	}
	if done['a'] != 4 || done['c'] != 12 {
		t.Fatalf("of 16 jobs run, a (window 1) had %d and c (window 3) %d; want 4 and 12", done['a'], done['c'])
	}
}

func TestCanceledWaitingJobNeverQueues(t *testing.T) {
	l := newLane(t)
	for i := range 3 {
		l.submit("a", fmt.Sprint("a", i), 1)
	}
	// The API cancels a waiting job by dropping its held copy.
	if err := l.rdb.Unlink(context.Background(), jobs.HeldKey(pool, "a1")).Err(); err != nil {
		t.Fatal(err)
	}
	l.take("a")
	if got := l.queued(); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("after a0 done, queued %v, want a2 (a1 was canceled)", got)
	}
}

func TestReapRepairsWhatDeadProcessesLeft(t *testing.T) {
	l := newLane(t)
	ctx := context.Background()
	for i := range 4 {
		l.submit("a", fmt.Sprint("a", i), 3)
	}
	// a0 ran to completion but its worker died before releasing it; a1's
	// task was deleted with no release (a cancel whose release failed); a2
	// was admitted from the line by a process that died before enqueueing
	// it: its held copy is all that is left.
	k := jobs.FairKeys(pool, "a")
	q := jobs.Queue(pool, jobs.LaneAsync)
	if err := l.rdb.LRem(ctx, queue.Key(q, "pending"), 0, "a0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.rdb.HSet(ctx, queue.TaskKey(q, "a0"), "state", "completed").Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.insp.DeleteTask(q, "a1"); err != nil {
		t.Fatal(err)
	}
	held, _ := jobs.NewHeldJob(jobs.PredictPayload{RequestID: "a2", Tenant: "a", ModelID: "21", Inputs: []byte(`{}`)},
		jobs.TaskOptions{Pool: pool, Lane: jobs.LaneAsync, Retention: time.Hour, MaxRetry: 3})
	if err := l.insp.DeleteTask(q, "a2"); err != nil {
		t.Fatal(err)
	}
	if err := l.rdb.Set(ctx, jobs.HeldKey(pool, "a2"), held, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	// Within the stale time, a task-less admitted job may still be on its
	// way to the queue: only a0's ended task frees a place.
	if err := fairq.Reap(ctx, l.rdb, l.client, pool, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := l.queued(); !slices.Equal(got, []string{"a3"}) {
		t.Fatalf("after an early reap, queued %v, want a3 (a0's place freed)", got)
	}
	if err := fairq.Reap(ctx, l.rdb, l.client, pool, 0); err != nil {
		t.Fatal(err)
	}
	if got := l.queued(); !slices.Equal(got, []string{"a3", "a2"}) {
		t.Fatalf("after the reap, queued %v, want a3 and a2 again", got)
	}
	admitted, _ := l.rdb.ZRange(ctx, k[0], 0, -1).Result()
	slices.Sort(admitted)
	if !slices.Equal(admitted, []string{"a2", "a3"}) {
		t.Fatalf("admitted %v, want a2 and a3", admitted)
	}
	// Once nothing is admitted or waiting, the tenant leaves the reap's set.
	l.take("a")
	l.take("a")
	if err := fairq.Reap(ctx, l.rdb, l.client, pool, 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.rdb.SCard(ctx, jobs.FairTenantsKey(pool)).Result(); n != 0 {
		t.Fatalf("%d tenants left in the reap's set, want 0", n)
	}
}
