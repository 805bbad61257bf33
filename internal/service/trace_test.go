package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestTracingOffWithoutEndpoint(t *testing.T) {
	tp, stop, err := SetupTracing(context.Background(), "x", func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil || tp != nil {
		t.Fatalf("SetupTracing without an endpoint: %v, %v; want tracing off", tp, err)
	}
	stop()
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans reach the collector's
// /v1/traces over OTLP/HTTP when the provider stops, and a span's
// traceparent carries its trace to a context on the other side.
func TestTracingExportsAndPropagates(t *testing.T) {
	var mu sync.Mutex
	var got []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		if len(b) == 0 {
			t.Errorf("empty export body")
		}
	}))
	defer collector.Close()
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_SERVICE_NAME": "test-service"}
	tp, stop, err := SetupTracing(context.Background(), "x", func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err != nil || tp == nil {
		t.Fatalf("SetupTracing: %v, %v", tp, err)
	}
	ctx, span := tp.Tracer("test").Start(context.Background(), "api")
	tp1 := Traceparent(ctx)
	remote := WithTraceparent(context.Background(), tp1)
	_, child := tp.Tracer("test").Start(remote, "worker")
	if child.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Errorf("the child is in trace %s, not %s (traceparent %q)", child.SpanContext().TraceID(), span.SpanContext().TraceID(), tp1)
	}
	child.End()
	span.End()
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0] != "POST /v1/traces application/x-protobuf" {
		t.Errorf("collector saw %q, want a POST /v1/traces of protobuf", got)
	}
	if Traceparent(context.Background()) != "" || WithTraceparent(context.Background(), "") != context.Background() {
		t.Errorf("no span should mean no traceparent, and no traceparent no change")
	}
}
