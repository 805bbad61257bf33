package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/leadgen"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

// BenchmarkBatchInProcess scores a lead file in this process with the code
// a worker runs on a chunk (record splitting, row decoding, encoding, the
// engine's block path, result encoding) on every core, without Redis, the
// queue or HTTP: the ceiling the queued path is compared with. The file is
// HOKUSAI_BENCH_FILE, or HOKUSAI_BENCH_ROWS (default 1,000,000) synthetic
// leads written under the temp dir.
//
//	go test ./worker/ -run '^$' -bench BatchInProcess -benchtime 1x
func BenchmarkBatchInProcess(b *testing.B) {
	path := os.Getenv("HOKUSAI_BENCH_FILE")
	if path == "" {
		path = writeBenchLeads(b)
	}
	m, err := model.Load(filepath.Join("..", "models", "sales-lead-scoring"))
	if err != nil {
		b.Fatal(err)
	}
	l := loaded{model: &folderModel{m: m}, info: jobs.ModelInfo{Schema: *m.Schema()}}
	for b.Loop() {
		start := time.Now()
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rows := scoreFile(b, l, f)
		f.Close()
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	}
}

// scoreFile splits a CSV into 4096-row chunks as the API does and scores
// them on GOMAXPROCS goroutines as workers do. It returns the rows scored.
func scoreFile(b *testing.B, l loaded, r io.Reader) int {
	rd := batchfile.NewCSVReader(r, 1<<20)
	head, err := rd.Next()
	if err != nil {
		b.Fatal(err)
	}
	header, _ := batchfile.SplitCSV(string(head), nil)
	hj, _ := json.Marshal(header)
	rec, _ := jobs.DecodeBatchRecord(map[string]string{jobs.BatchFieldFormat: jobs.BatchCSV, jobs.BatchFieldHeader: string(hj)})
	chunks := make(chan string, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range chunks {
				sc, err := newChunkScorer(l, rec)
				if err != nil {
					b.Error(err)
					return
				}
				_, n, err := sc.run(context.Background(), chunk, 0)
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				total += n.ok + n.failed
				mu.Unlock()
			}
		}()
	}
	var chunk bytes.Buffer
	for n := 0; ; n++ {
		line, err := rd.Next()
		if err == io.EOF || n == 4096 {
			chunks <- chunk.String()
			chunk.Reset()
			n = 0
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		chunk.Write(line)
		chunk.WriteByte('\n')
	}
	close(chunks)
	wg.Wait()
	return total
}

func writeBenchLeads(b *testing.B) string {
	n, err := strconv.Atoi(os.Getenv("HOKUSAI_BENCH_ROWS"))
	if err != nil || n <= 0 {
		n = 1_000_000
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("hokusai-leads-%d.csv", n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	var buf bytes.Buffer
	if err := leadgen.WriteCSV(&buf, n, 21, nil); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}
