package worker

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/worker/hub"
	"github.com/hokusai-ai/inference-queue/worker/hub/hubtest"
)

// 100 simultaneous first requests for an uncached Hub model cause exactly one
// download of each file and one load.
func TestConcurrentFirstLoadsDownloadAndLoadOnce(t *testing.T) {
	h := hubtest.New(t)
	files := map[string][]byte{}
	for _, name := range []string{"config.json", "model.json"} {
		b, err := os.ReadFile(filepath.Join("..", "models", "sales-lead-scoring", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	h.AddRepo(hubtest.Repo{ID: "hokusai/leads", Files: files, LFS: []string{"model.json"}})
	hc, err := hub.New(hub.Options{Endpoint: h.URL(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	src := NewSources(SourcesConfig{Hub: hc})
	spec := registry.Spec{ID: "21", Source: "hf://hokusai/leads"}.WithDefaults()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	models := make(chan Model, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := src.Load(context.Background(), spec)
			errs <- err
			models <- m
		}()
	}
	wg.Wait()
	close(errs)
	close(models)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	first := <-models
	for m := range models {
		if m != first {
			t.Fatal("concurrent loads returned different model instances")
		}
	}
	for name := range files {
		if n := h.Downloads("hokusai/leads", name); n != 1 {
			t.Errorf("%s downloaded %d times, want 1", name, n)
		}
	}
	if st := src.Stats(); st.Loads != 1 || st.Hits+st.Misses != 100 {
		t.Errorf("cache stats %+v, want 1 load for 100 requests", st)
	}
	if rev := first.Info().Revision; len(rev) != 40 {
		t.Errorf("revision %q, want the Hub commit sha", rev)
	}
}
