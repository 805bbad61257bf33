package stacktest

import (
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker"
)

// processWorkerID is the id of the one ready worker not running in this
// process, read from the heartbeats.
func (s *stack) processWorkerID() string {
	s.t.Helper()
	var own []string
	for w := range s.stops {
		own = append(own, w.Heartbeat().WorkerID)
	}
	for _, id := range s.rdb.ZRange(s.t.Context(), jobs.WorkersKey, 0, -1).Val() {
		if !slices.Contains(own, id) {
			return id
		}
	}
	s.t.Fatalf("no worker process has a heartbeat; logs:\n%s", s.logs)
	return ""
}

// killHolding kills victim (SIGKILL) at a moment it holds tasks of queue
// q: it stops the process, and kills it if it holds some, else lets it
// run a little longer. It returns the ids of the tasks the victim held.
func (s *stack) killHolding(victim *exec.Cmd, q string) []string {
	s.t.Helper()
	id := s.processWorkerID()
	for range 200 {
		if err := victim.Process.Signal(syscall.SIGSTOP); err != nil {
			s.t.Fatal(err)
		}
		var held []string
		for task, holder := range s.rdb.HGetAll(s.t.Context(), queue.HoldersKey(q)).Val() {
			if holder == id {
				held = append(held, task)
			}
		}
		if len(held) > 0 {
			if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
				s.t.Fatal(err)
			}
			_ = victim.Wait()
			return held
		}
		_ = victim.Process.Signal(syscall.SIGCONT)
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("the victim never held a task of %s", q)
	return nil
}

// answered is one sync caller's answer.
type answered struct {
	code int
	id   string
	body string
}

// A worker killed (kill -9) under sync load: every caller is answered,
// with its result or a 504 naming a job that completes, and the tasks the
// dead worker held run again on the other worker within seconds, not
// asynq's minute or two.
func TestWorkerKilledUnderSyncLoad(t *testing.T) {
	s := startStack(t, stackOptions{noWorker: true})
	victim := s.startWorkerProcess(buildWorker(t), srv.URL)
	survivor, _ := s.startWorker(srv.URL, worker.Config{})
	s.waitWorkers(2)

	// Ten rows with explain=true a call (TreeSHAP, about 1 ms a row):
	// tasks last long enough for the victim to hold some when killed.
	body := []byte(`{"inputs": [` + strings.Join(slices.Repeat([]string{lead}, 10), ",") + `], "options": {"explain": true}}`)
	stop := make(chan struct{})
	var stopOnce sync.Once
	var mu sync.Mutex
	var got []answered
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r := s.do("POST", "/api/v1/models/21/predict", body, map[string]string{"Prefer": "wait=20"})
				mu.Lock()
				got = append(got, answered{r.code, r.header.Get("X-Request-ID"), string(r.body)})
				mu.Unlock()
			}
		})
	}
	stopLoad := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(stopLoad) // before the stack stops, should the test fail
	time.Sleep(500 * time.Millisecond)
	held := s.killHolding(victim, "default:sync")
	killed := time.Now()
	// A liveness bound, not a measurement: the figure is logged. The held
	// tasks may be predict groups, whose ids are not jobs: ask asynq.
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	eventually(t, 20*time.Second, func() bool {
		for _, id := range held {
			if info, err := insp.GetTaskInfo("default:sync", id); err != nil || info.State != asynq.TaskStateCompleted {
				return false
			}
		}
		return true
	}, "the %d tasks the dead worker held never ran again; logs:\n%s", len(held), s.logs)
	t.Logf("the %d sync tasks the killed worker held completed %.1f s after the kill", len(held), time.Since(killed).Seconds())
	time.Sleep(time.Second) // load on the survivor alone
	stopLoad()

	codes := map[int]int{}
	for _, a := range got {
		codes[a.code]++
		switch a.code {
		case 200:
		case 504:
			s.waitJob(t, a.id, "succeeded")
		default:
			t.Errorf("caller %s answered %d: %s", a.id, a.code, a.body)
		}
	}
	t.Logf("answers by status: %v", codes)
	reclaimed := samples(scrape(t, s.health[survivor]))[series("hokusai_worker_reclaimed_tasks_total", "queue", "default:sync")]
	if int(reclaimed) < len(held) {
		t.Errorf("the survivor reclaimed %v tasks; the victim held %d", reclaimed, len(held))
	}
}
