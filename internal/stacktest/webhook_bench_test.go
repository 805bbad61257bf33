package stacktest

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkSyncWithFailingWebhooks reports the p50 and p99 of sync
// predicts (c=1, every answer counted, a 504 too) on one worker serving all lanes, as
// `hokusai dev` runs: idle, and right after 40 one-row batches whose
// callback_url refuses every connection, so each of their webhooks goes
// through its retries.
//
//	go test ./internal/stacktest/ -run '^$' -bench SyncWithFailingWebhooks -benchtime 1x
func BenchmarkSyncWithFailingWebhooks(b *testing.B) {
	s := startStack(b, stackOptions{})
	dead := refusingURL(b)
	idle, _ := s.predictLatencies(200, time.Minute)
	for b.Loop() {
		for range 40 {
			s.acceptedBatch(s.submitBatch(leadsCSV(b, 1, nil), "text/csv", "?callback_url="+dead, nil))
		}
		busy, failed := s.predictLatencies(200, time.Minute)
		b.ReportMetric(float64(percentile(idle, 50).Microseconds())/1000, "ms_sync_p50_idle")
		b.ReportMetric(float64(percentile(busy, 50).Microseconds())/1000, "ms_sync_p50_webhooks")
		b.ReportMetric(float64(percentile(idle, 99).Microseconds())/1000, "ms_sync_p99_idle")
		b.ReportMetric(float64(percentile(busy, 99).Microseconds())/1000, "ms_sync_p99_webhooks")
		b.ReportMetric(float64(failed), "sync_not_ok")
		b.Logf("%d predicts idle, %d beside the failing webhooks", len(idle), len(busy))
	}
}

// predictLatencies sends up to n sync predicts one after another, for at
// most within, and returns the time each took to be answered, whatever
// the answer, and how many were not 200.
func (s *stack) predictLatencies(n int, within time.Duration) (took []time.Duration, notOK int) {
	body := []byte(`{"inputs": ` + lead + `}`)
	for end := time.Now().Add(within); len(took) < n && time.Now().Before(end); {
		t0 := time.Now()
		if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != http.StatusOK {
			notOK++
		}
		took = append(took, time.Since(t0))
	}
	return took, notOK
}

// refusingURL is a callback URL on a loopback port nobody listens on: every
// connection is refused at once.
func refusingURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/hook"
}
