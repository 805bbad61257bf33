package schedule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func create(t *testing.T, rdb redis.UniversalClient, id, tenant, spec, zone string, at time.Time) {
	t.Helper()
	tm := mustTiming(t, spec, zone)
	sch := Schedule{ID: id, Tenant: tenant, KeyID: "k", ModelID: "21", Cron: spec, TimeZone: zone,
		InputURL: "s3://leads/{{date}}.csv", OutputURL: "s3://leads/out/", CreatedAt: at}
	if err := Create(t.Context(), rdb, sch, tm.Next(at)); err != nil {
		t.Fatal(err)
	}
}

// Four processes, each on its own connection and its own clock (skewed
// and stepping unevenly), look for due schedules over three virtual hours
// at once: every scheduled time of every schedule is won exactly once.
func TestClaimDueOnceAcrossProcesses(t *testing.T) {
	rdb := redistest.Client(t, srv)
	t0 := time.Date(2026, 12, 3, 9, 59, 30, 0, time.UTC)
	specs := map[string][2]string{"minutely": {"* * * * *", "UTC"}, "five": {"*/5 * * * *", "Asia/Kolkata"},
		"hourly": {"0 * * * *", "America/New_York"}}
	for id, s := range specs {
		create(t, rdb, id, "acme", s[0], s[1], t0)
	}
	end := t0.Add(3 * time.Hour)
	var mu sync.Mutex
	won := map[string][]time.Time{}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			c := redis.NewClient(&redis.Options{Addr: rdb.(*redis.Client).Options().Addr})
			defer c.Close()
			r := rand.New(rand.NewPCG(uint64(p), 7))
			skew := time.Duration(r.IntN(4000)-2000) * time.Millisecond
			for now := t0; now.Before(end); {
				now = now.Add(time.Duration(1+r.IntN(20_000)) * time.Millisecond)
				if now.After(end) {
					now = end
				}
				fs, err := ClaimDue(context.Background(), c, now.Add(skew), 100)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, f := range fs {
					won[f.ID] = append(won[f.ID], f.At)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for id, s := range specs {
		tm := mustTiming(t, s[0], s[1])
		var want []time.Time
		// Up to the earliest clock's end: a later time may be won or not.
		for at := tm.Next(t0); !at.After(end.Add(-2 * time.Second)); at = tm.Next(at) {
			want = append(want, at)
		}
		var got []time.Time
		seen := map[time.Time]int{}
		for _, at := range won[id] {
			seen[at]++
			if !at.After(end.Add(-2 * time.Second)) {
				got = append(got, at)
			}
		}
		for at, n := range seen {
			if n != 1 || at.IsZero() {
				t.Errorf("%s: %s won %d times", id, at, n)
			}
		}
		slices.SortFunc(got, time.Time.Compare)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: scheduled times won (-want +got):\n%s", id, diff)
		}
	}
}

// After an outage a schedule runs once, for its latest missed time, if
// that is within CatchUp; otherwise the missed times are skipped and the
// next one runs.
func TestClaimDueMissedRuns(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) // a Sunday
	create(t, rdb, "min", "acme", "* * * * *", "UTC", t0)
	create(t, rdb, "wed", "acme", "0 2 * * 3", "UTC", t0)
	claimAt := func(now time.Time) map[string]Firing {
		fs, err := ClaimDue(ctx, rdb, now, 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Firing{}
		for _, f := range fs {
			out[f.ID] = f
		}
		return out
	}
	// Down from t0 to Sunday 00:10:30: the minutely one runs once, for 00:10.
	got := claimAt(t0.Add(10*time.Minute + 30*time.Second))
	if len(got) != 1 || !got["min"].At.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("after 10 minutes down: %+v; want one run of min for 00:10", got)
	}
	if again := claimAt(t0.Add(10*time.Minute + 31*time.Second)); len(again) != 0 {
		t.Fatalf("the same time won twice: %+v", again)
	}
	// Down until Sunday after: Wednesday 02:00 is over a day old, skipped.
	got = claimAt(time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC))
	if f, ok := got["wed"]; !ok || !f.At.IsZero() || !f.Since.Equal(time.Date(2026, 11, 4, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("a run missed by days: %+v; want it skipped", got["wed"])
	}
	// Wednesday's run, three hours late, still runs.
	got = claimAt(time.Date(2026, 11, 11, 5, 0, 0, 0, time.UTC))
	if f := got["wed"]; !f.At.Equal(time.Date(2026, 11, 11, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("a run three hours late: %+v; want it run for 02:00", f)
	}
}

// Schedules are their tenant's: listed, deleted and counted per tenant.
func TestTenantSchedules(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	for i := range MaxPerTenant {
		create(t, rdb, fmt.Sprint("a", i), "acme", "0 2 * * *", "UTC", t0)
	}
	sch := Schedule{ID: "over", Tenant: "acme", Cron: "0 2 * * *"}
	if err := Create(ctx, rdb, sch, t0); !errors.Is(err, ErrTooMany) {
		t.Fatalf("schedule %d: %v, want ErrTooMany", MaxPerTenant+1, err)
	}
	create(t, rdb, "b0", "globex", "0 2 * * *", "UTC", t0)
	if err := Record(ctx, rdb, "b0", Run{ScheduledFor: t0, BatchID: "batch-1"}); err != nil {
		t.Fatal(err)
	}
	list, err := List(ctx, rdb, "globex")
	if err != nil || len(list) != 1 || list[0].ID != "b0" || len(list[0].Runs) != 1 || list[0].Runs[0].BatchID != "batch-1" ||
		list[0].NextRun == nil {
		t.Fatalf("globex's schedules: %+v, %v", list, err)
	}
	if ok, err := Delete(ctx, rdb, "globex", "a0"); ok || err != nil {
		t.Fatalf("globex deleted acme's schedule: %v %v", ok, err)
	}
	if ok, err := Delete(ctx, rdb, "globex", "b0"); !ok || err != nil {
		t.Fatalf("globex could not delete its schedule: %v %v", ok, err)
	}
	if n, _ := rdb.ZScore(ctx, NextKey, "b0").Result(); n != 0 {
		t.Fatal("a deleted schedule is still due")
	}
	if list, _ := List(ctx, rdb, "acme"); len(list) != MaxPerTenant {
		t.Fatalf("acme has %d schedules, want %d", len(list), MaxPerTenant)
	}
}
