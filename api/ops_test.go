package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	_, base := serve(t, cfg)
	return base
}

// serve runs a Server on a loopback listener until the test ends.
func serve(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := NewServer(cfg, redistest.Client(t, srv), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	return s, "http://" + ln.Addr().String()
}

// The operator pages: off without a token, Basic or Bearer admin auth,
// read-only unless the write token is used.
func TestOpsAuth(t *testing.T) {
	off := startServer(t, Config{})
	on := startServer(t, Config{AdminToken: "read-tok", AdminWriteToken: "write-tok"})
	for _, tc := range []struct {
		name, base, method, path string
		user, pass, bearer       string
		want                     int
		wantCode                 string
	}{
		{"off", off, "GET", "/ops/queues", "", "", "read-tok", 404, CodeNotFound},
		{"off workers", off, "GET", "/ops/workers", "", "", "", 404, CodeNotFound},
		{"no credentials", on, "GET", "/ops/queues", "", "", "", 401, CodeUnauthorized},
		{"wrong password", on, "GET", "/ops/queues", "admin", "nope", "", 401, CodeUnauthorized},
		{"basic", on, "GET", "/ops/queues", "anyone", "read-tok", "", 200, ""},
		{"bearer", on, "GET", "/ops/queues/api/queues", "", "", "read-tok", 200, ""},
		{"workers page", on, "GET", "/ops/workers", "", "read-tok", "", 200, ""},
		{"read token cannot act", on, "POST", "/ops/queues/api/queues/default:sync:pause", "", "", "read-tok", 405, ""},
		{"write token acts", on, "POST", "/ops/queues/api/queues/default:sync:pause", "", "", "write-tok", 204, ""},
		{"metrics need nothing", off, "GET", "/metrics", "", "", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.base+tc.path, nil)
			if tc.pass != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			}
			if tc.wantCode != "" {
				var e struct{ Code string }
				if json.Unmarshal(body, &e) != nil || e.Code != tc.wantCode {
					t.Errorf("body %s, want JSON code %s", body, tc.wantCode)
				}
			}
			if tc.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// Counting a request allocates nothing once its code has been seen.
func TestMetricsObserveDoesNotAllocate(t *testing.T) {
	m := newMetrics(routes)
	m.observe("POST", "/api/v1/models/:id/predict", 200, time.Millisecond)
	m.observe("GET", "/nowhere", 404, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() {
		m.observe("POST", "/api/v1/models/:id/predict", 200, time.Millisecond)
		m.observe("GET", "/nowhere", 404, time.Millisecond)
		m.waited(waitReplied, time.Now())
		m.reject(CodeInvalidInput)
	}); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}
