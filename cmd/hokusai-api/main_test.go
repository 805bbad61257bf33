package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hokusai-ai/inference-queue/internal/cmdtest"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func TestRunServesAndHealthchecks(t *testing.T) {
	redistest.Client(t, srv)
	addr := cmdtest.Start(t, run, []string{"hokusai-api", "--listen", "127.0.0.1:0"},
		map[string]string{"REDIS_URL": srv.URL}, "api listening")
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/health: %d", resp.StatusCode)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"hokusai-api", "healthcheck", "--url", "http://" + addr + "/ready"}, nil, &out, io.Discard); err != nil {
		t.Errorf("healthcheck of a ready API: %v", err)
	}
	if err := run(context.Background(), []string{"hokusai-api", "healthcheck", "--url", "http://" + addr + "/nope"}, nil, io.Discard, io.Discard); err == nil {
		t.Error("healthcheck of a 404 passed")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	env := map[string]string{"HOKUSAI_SYNC_TIMEOUT": "soon"}
	err := run(context.Background(), []string{"hokusai-api"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HOKUSAI_SYNC_TIMEOUT") {
		t.Errorf("err = %v, want one naming HOKUSAI_SYNC_TIMEOUT", err)
	}
}
