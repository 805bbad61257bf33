package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

// Batch work paces itself only while partners are calling: a sync predict
// (even one refused) starts the pacing, and it stops syncRecent later.
func TestBatchPacingFollowsSyncTraffic(t *testing.T) {
	s, base := serve(t, Config{})
	key, _, err := apikey.Create(t.Context(), redistest.Client(t, srv), "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	p := s.batchPacer()
	if p.Burst != 250*time.Microsecond || p.Pause != 500*time.Microsecond {
		t.Fatalf("default pace %v/%v, want 250us/500us", p.Burst, p.Pause)
	}
	if p.Busy() {
		t.Fatal("batch work paced before any sync predict")
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/models/no-such-model/predict", strings.NewReader(`{"inputs": {}}`))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("predict on an unknown model answered %d", resp.StatusCode)
	}
	if !p.Busy() {
		t.Fatal("batch work not paced right after a sync predict")
	}
	s.lastSync.Add(-int64(syncRecent))
	if p.Busy() {
		t.Fatalf("batch work still paced %v after the last sync predict", syncRecent)
	}
}

func TestBatchPaceConfig(t *testing.T) {
	if _, err := NewServer(Config{Batch: BatchConfig{PacePause: -time.Millisecond}}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "pace pause") {
		t.Fatalf("a negative pace pause was accepted: %v", err)
	}
	off := Config{Batch: BatchConfig{PaceBurst: -1}}.WithDefaults()
	if off.Batch.PaceBurst >= 0 {
		t.Fatalf("a negative PaceBurst became %v; it must stay off", off.Batch.PaceBurst)
	}
}
