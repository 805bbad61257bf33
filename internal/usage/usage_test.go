package usage

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// What is added is read back exactly, per tenant, key and model, after one
// flush; a tenant's read never shows another's; the day hash expires Days
// after its day.
func TestMeterFlushRead(t *testing.T) {
	rdb := redistest.Client(t, srv)
	m := NewMeter(rdb, Config{Days: 3})
	m.Add("acme", "k1", "21", Counts{Requests: 1})
	m.Add("acme", "k1", "21", Counts{Requests: 1, Errors: 1})
	m.Add("acme", "k1", "21", Counts{Rows: 100, Compute: 1500 * time.Microsecond})
	m.Add("acme", "k2", "", Counts{Requests: 3})
	m.Add("acme", "k2", "a|b", Counts{BatchRows: 7, FailedRows: 2})
	m.Add("beta", "k3", "21", Counts{Requests: 5})
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.Add("acme", "k1", "21", Counts{Requests: 1})
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	day := now.Format(time.DateOnly)
	rows, err := Read(t.Context(), rdb, "acme", now.AddDate(0, 0, -2), now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Day: day, Tenant: "acme", KeyID: "k1", ModelID: "21", Requests: 3, Errors: 1, Rows: 100, ComputeSeconds: 0.0015},
		{Day: day, Tenant: "acme", KeyID: "k2", ModelID: "", Requests: 3},
		{Day: day, Tenant: "acme", KeyID: "k2", ModelID: "a|b", BatchRows: 7, FailedRows: 2},
	}
	if d := cmp.Diff(want, rows); d != "" {
		t.Errorf("acme's usage (-want +got):\n%s", d)
	}
	ttl := rdb.TTL(t.Context(), dayKey("acme", now.Unix()/86400)).Val()
	if ttl <= 3*24*time.Hour || ttl > 4*24*time.Hour {
		t.Errorf("day hash TTL %s, want between 3 and 4 days", ttl)
	}
	if ts, _ := Tenants(t.Context(), rdb); !cmp.Equal(ts, []string{"acme", "beta"}) {
		t.Errorf("tenants %v", ts)
	}
	want2 := Counts{Requests: 6, Errors: 1, Rows: 100, BatchRows: 7, FailedRows: 2, Compute: 1500 * time.Microsecond}
	if got := m.Totals()["acme"]; got != want2 {
		t.Errorf("acme's totals %+v, want %+v", got, want2)
	}
}

// A flush that fails keeps its counts for the next; Run flushes once more
// when its context ends.
func TestMeterKeepsCountsUntilWritten(t *testing.T) {
	rdb := redistest.Client(t, srv)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer dead.Close()
	m := NewMeter(dead, Config{FlushInterval: time.Hour})
	m.Add("acme", "k1", "21", Counts{Requests: 2})
	if err := m.Flush(t.Context()); err == nil {
		t.Fatal("flush to a dead Redis succeeded")
	}
	m.rdb = rdb
	m.Add("acme", "k1", "21", Counts{Requests: 1})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	cancel()
	<-done
	now := time.Now()
	rows, err := Read(t.Context(), rdb, "acme", now, now)
	if err != nil || len(rows) != 1 || rows[0].Requests != 3 {
		t.Fatalf("after the stop: %+v %v, want 3 requests", rows, err)
	}
}

func TestParseRange(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, tc := range []struct {
		name, since, until string
		from, to           string
		param              string
	}{
		{"defaults", "", "", "2026-11-04", "2026-12-03", ""},
		{"one day", "2026-12-01", "2026-12-01", "2026-12-01", "2026-12-01", ""},
		{"a leap year's 366 days", "2024-01-01", "2024-12-31", "2024-01-01", "2024-12-31", ""},
		{"367 days", "2024-01-01", "2025-01-01", "", "", "since"},
		{"backwards", "2026-12-02", "2026-12-01", "", "", "since"},
		{"bad since", "12/01/2026", "", "", "", "since"},
		{"bad until", "", "2026-13-01", "", "", "until"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to, param, err := ParseRange(tc.since, tc.until, now)
			if tc.param != "" {
				if err == nil || param != tc.param {
					t.Fatalf("got %v %v, %q %v; want an error on %s", from, to, param, err, tc.param)
				}
				return
			}
			if err != nil || !from.Equal(day(tc.from)) || !to.Equal(day(tc.to)) {
				t.Fatalf("got %v %v %v; want %s..%s", from, to, err, tc.from, tc.to)
			}
		})
	}
}

// Benchmark of the hot path's cost: one Add of an existing cell.
func BenchmarkAdd(b *testing.B) {
	m := NewMeter(nil, Config{})
	for b.Loop() {
		m.Add("acme", "0123456789ab", "21", Counts{Requests: 1})
	}
}
