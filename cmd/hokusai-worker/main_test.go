package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/cmdtest"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// A worker whose pool has no models says so on /readyz and its healthcheck
// fails, while /livez stays 200.
func TestRunReportsReadiness(t *testing.T) {
	redistest.Client(t, srv)
	addr := cmdtest.Start(t, run, []string{"hokusai-worker", "--health-addr", "127.0.0.1:0", "--pool", "empty"},
		map[string]string{"REDIS_URL": srv.URL}, "health listening")
	resp, err := http.Get("http://" + addr + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/livez: %d", resp.StatusCode)
	}
	var ready struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ready.Reasons) == 0 && time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 503 {
			t.Fatalf("/readyz: %d, want 503", resp.StatusCode)
		}
		_ = json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if ready.Status != "not_ready" || len(ready.Reasons) != 1 || ready.Reasons[0] != "no_models_in_pool" {
		t.Errorf("/readyz said %+v", ready)
	}
	if err := run(context.Background(), []string{"hokusai-worker", "healthcheck", "--url", "http://" + addr + "/readyz"}, nil, io.Discard, io.Discard); err == nil {
		t.Error("healthcheck of a worker that is not ready passed")
	}
}
