package schedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/leadgen"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/internal/schedule"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
	"github.com/hokusai-ai/inference-queue/worker/objstore/objstoretest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// client returns a connection of its own to the test's Redis: each
// process has one, as separate processes would.
func client(t *testing.T) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// run runs fn until the test ends, then waits for it to return.
func run(t *testing.T, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// get reads path from the API at base as key into v.
func get(t *testing.T, base, key, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, v) != nil {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
}

// A schedule every minute, with two API processes looking for due
// schedules and two workers, starts exactly one batch for each of three
// minutes; each batch scores the input its date names and writes its
// results under its own minute's prefix.
func TestEveryMinuteForThreeMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("takes three minutes")
	}
	rdb := redistest.Client(t, srv) // flushes
	ctx := t.Context()
	_, file, _, _ := runtime.Caller(0)
	model := filepath.Join(filepath.Dir(file), "..", "..", "models", "sales-lead-scoring")
	if err := registry.Apply(ctx, rdb, []registry.Spec{(registry.Spec{ID: "21", Name: "Sales Lead Scoring Model", Source: "file://" + model}).WithDefaults()}); err != nil {
		t.Fatal(err)
	}
	key, _, err := apikey.Create(ctx, rdb, "acme", "unlimited")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := objstoretest.New(t, "leads")
	allow, err := s3url.ParseAllow("s3://leads/exports,s3://leads/scores")
	if err != nil {
		t.Fatal(err)
	}
	// Warnings and errors only: the runs are checked in Redis and the API.
	log := slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var apis []string
	for i := range 2 {
		a, err := api.NewServer(api.Config{S3Allow: allow}, client(t), log.With("tier", "api", "process", i))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		apis = append(apis, "http://"+ln.Addr().String())
		run(t, func(ctx context.Context) { _ = a.Run(ctx, ln) })
	}
	for i := range 2 {
		sources := worker.NewSources(worker.SourcesConfig{})
		w, err := worker.New(worker.Config{S3: st, S3Allow: allow, ShutdownTimeout: 5 * time.Second}, client(t), sources.Load,
			log.With("tier", "worker", "process", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Register(sources); err != nil {
			t.Fatal(err)
		}
		run(t, func(ctx context.Context) { _ = w.Run(ctx) })
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var h struct {
			ReadyWorkers int `json:"ready_workers"`
		}
		get(t, apis[1], key, "/api/v1/models/21/health", &h)
		if h.ReadyWorkers == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers never ready (%d of 2)", h.ReadyWorkers)
		}
	}
	const rows = 50
	var input bytes.Buffer
	if err := leadgen.WriteCSV(&input, rows, 1, nil); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	for _, d := range []time.Time{today, today.Add(24 * time.Hour)} { // the test may cross midnight
		u, _ := s3url.Parse("s3://leads/exports/" + d.Format(time.DateOnly) + ".csv")
		if err := st.Put(ctx, u, input.Bytes(), "text/csv"); err != nil {
			t.Fatal(err)
		}
	}

	body := `{"model_id": "21", "cron": "* * * * *", "input_url": "s3://leads/exports/{{date}}.csv",
		"output_url": "s3://leads/scores/{{date}}/{{time}}/"}`
	req, _ := http.NewRequest("POST", apis[0]+"/api/v1/schedules", strings.NewReader(body))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sch schedule.Listed
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &sch) != nil || sch.NextRun == nil {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	want := []time.Time{*sch.NextRun, sch.NextRun.Add(time.Minute), sch.NextRun.Add(2 * time.Minute)}
	// Past the third minute by long enough that a late second run would show.
	time.Sleep(time.Until(want[2].Add(15 * time.Second)))

	var list struct{ Schedules []schedule.Listed }
	get(t, apis[1], key, "/api/v1/schedules", &list)
	runs := list.Schedules[0].Runs
	if len(runs) != len(want) {
		t.Fatalf("%d runs, want %d: %+v", len(runs), len(want), runs)
	}
	batches := map[string]bool{}
	for i, r := range runs {
		at := want[len(want)-1-i] // newest first
		if !r.ScheduledFor.Equal(at) || r.Error != nil || r.BatchID == "" || batches[r.BatchID] {
			t.Fatalf("run %d: %+v; want a batch of its own for %s", i, r, at)
		}
		batches[r.BatchID] = true
		t.Logf("run for %s fired %s after its time", at.Format(time.TimeOnly), r.FiredAt.Sub(at))
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			var bs struct {
				Status     string `json:"status"`
				RowsTotal  int    `json:"rows_total"`
				ScheduleID string `json:"schedule_id"`
				OutputURL  string `json:"output_url"`
			}
			get(t, apis[i%2], key, "/api/v1/batches/"+r.BatchID, &bs)
			if bs.Status == jobs.BatchSucceeded {
				wantOut := fmt.Sprintf("s3://leads/scores/%s/%s/", at.Format(time.DateOnly), at.Format("1504"))
				if bs.RowsTotal != rows || bs.ScheduleID != sch.ID || bs.OutputURL != wantOut {
					t.Fatalf("run %d's batch: %+v; want %d rows written to %s", i, bs, rows, wantOut)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d's batch %s: %+v", i, r.BatchID, bs)
			}
		}
	}
	// Every batch in Redis is one of the runs'.
	var n int
	iter := rdb.Scan(ctx, 0, "hokusai:batch:{*}", 1000).Iterator()
	for iter.Next(ctx) {
		if strings.HasSuffix(iter.Val(), "}") {
			n++
		}
	}
	if n != len(want) {
		t.Fatalf("%d batch records; want %d", n, len(want))
	}
}
