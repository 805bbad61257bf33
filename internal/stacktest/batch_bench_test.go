package stacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/leadgen"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// benchRows is the size of the benchmark's lead file: HOKUSAI_BENCH_ROWS,
// default 1,000,000 (about 71 MB).
func benchRows() int { return rowsFromEnv("HOKUSAI_BENCH_ROWS", 1_000_000) }

// rowsFromEnv is the positive whole number in the environment variable
// name, or def.
func rowsFromEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// benchLeads writes (once) the benchmark's lead file under the temp dir,
// outside the repository.
func benchLeads(b *testing.B) string {
	b.Helper()
	n := benchRows()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("hokusai-leads-%d.csv", n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		b.Fatal(err)
	}
	if err := leadgen.WriteCSV(f, n, 21, nil); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkBatchEndToEnd submits the lead file to an API and worker on a
// private Redis, waits, and downloads the results, reporting the seconds
// from submit to the last result byte, Redis's peak memory over the file
// size, and the p99 of sync predicts (c=1) idle and while the batch runs.
//
//	go test ./internal/stacktest/ -run '^$' -bench BatchEndToEnd -benchtime 1x
func BenchmarkBatchEndToEnd(b *testing.B) {
	path := benchLeads(b)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	s := startStack(b, stackOptions{})
	idle, _ := syncLatencies(s, 2000, nil)
	for b.Loop() {
		base := redisMemory(b, s, "used_memory")
		stop := make(chan struct{})
		var busy []time.Duration
		var at []time.Time
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); busy, at = syncLatencies(s, 1<<30, stop) }()

		start := time.Now()
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequest("POST", s.url+"/api/v1/models/21/batches", f)
		req.Header.Set("X-API-Key", s.key)
		req.Header.Set("Content-Type", "text/csv")
		req.ContentLength = st.Size()
		resp, err := http.DefaultClient.Do(req)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		var acc struct {
			BatchID string `json:"batch_id"`
			Rows    int    `json:"rows"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&acc)
		resp.Body.Close()
		uploaded := time.Since(start)
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("submit answered %d", resp.StatusCode)
		}
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("batch did not finish in 5 minutes")
			}
			var st struct {
				Status string `json:"status"`
			}
			r := s.do("GET", "/api/v1/batches/"+acc.BatchID, nil, nil)
			_ = json.Unmarshal(r.body, &st)
			if st.Status == jobs.BatchSucceeded || st.Status == jobs.BatchPartiallyFailed || st.Status == jobs.BatchFailed {
				break
			}
		}
		scored := time.Since(start)
		req, _ = http.NewRequest("GET", s.url+"/api/v1/batches/"+acc.BatchID+"/results?format=csv", nil)
		req.Header.Set("X-API-Key", s.key)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(os.TempDir(), "hokusai-leads-scored.csv"))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(out, resp.Body)
		resp.Body.Close()
		out.Close()
		if err != nil {
			b.Fatal(err)
		}
		total := time.Since(start)
		close(stop)
		wg.Wait()
		peak := redisMemory(b, s, "used_memory_peak")
		b.ReportMetric(total.Seconds(), "s_end_to_end")
		b.ReportMetric(uploaded.Seconds(), "s_upload")
		b.ReportMetric((scored - uploaded).Seconds(), "s_after_upload")
		b.ReportMetric((total - scored).Seconds(), "s_download")
		b.ReportMetric(float64(acc.Rows)/total.Seconds(), "rows/s")
		b.ReportMetric(float64(peak-base)/float64(st.Size()), "redis_peak/input")
		b.ReportMetric(float64(p99(idle).Microseconds())/1000, "ms_sync_p99_idle")
		b.ReportMetric(float64(p99(busy).Microseconds())/1000, "ms_sync_p99_batch")
		phase := func(from, to time.Time) string {
			var d []time.Duration
			for i, t := range at {
				if !t.Before(from) && t.Before(to) {
					d = append(d, busy[i])
				}
			}
			return fmt.Sprintf("%d predicts, p99 %.1f ms", len(d), float64(p99(d).Microseconds())/1000)
		}
		b.Logf("sync during upload: %s; scoring: %s; download: %s", phase(start, start.Add(uploaded)),
			phase(start.Add(uploaded), start.Add(scored)), phase(start.Add(scored), start.Add(total)))
		b.Logf("%d rows, %d MB in, %d MB out; sync predicts: %d idle, %d during the batch; redis peak %d MB over a %d MB baseline",
			acc.Rows, st.Size()>>20, n>>20, len(idle), len(busy), (peak-base)>>20, base>>20)
	}
}

func redisMemory(b testing.TB, s *stack, field string) int64 {
	b.Helper()
	info, err := s.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatalf("INFO memory has no %s", field)
	return 0
}

// syncLatencies sends up to n sync predicts one after another until stop
// is closed (when not nil), and returns their latencies and start times.
func syncLatencies(s *stack, n int, stop chan struct{}) ([]time.Duration, []time.Time) {
	body := []byte(`{"inputs": ` + lead + `}`)
	var out []time.Duration
	var at []time.Time
	for i := 0; i < n; i++ {
		if stop != nil {
			select {
			case <-stop:
				return out, at
			default:
			}
		}
		req, _ := http.NewRequest("POST", s.url+"/api/v1/models/21/predict", bytes.NewReader(body))
		req.Header.Set("X-API-Key", s.key)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			out = append(out, time.Since(t0))
			at = append(at, t0)
		}
		if stop != nil {
			time.Sleep(2 * time.Millisecond) // a steady trickle, not a second load
		}
	}
	return out, at
}

func p99(d []time.Duration) time.Duration { return percentile(d, 99) }

// percentile returns the p-th percentile of d (0 when d is empty).
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)*p/100]
}
