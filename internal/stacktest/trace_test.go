package stacktest

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// logLines returns the JSON log lines whose msg is msg and whose request_id
// is id.
func logLines(t *testing.T, logs, msg, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg && m["request_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

// One request followed across the tiers: the API's request line and the
// worker's task line carry the same request_id with the fields an operator
// searches by, and the API, queue-wait and inference spans form one trace.
func TestOneRequestAcrossTiers(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	s := startStack(t, stackOptions{tracer: tp})

	r := s.do("POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), nil)
	if r.code != 200 {
		t.Fatalf("predict: %d %s", r.code, r.body)
	}
	id := r.header.Get("X-Request-ID")

	var apiLine, taskLine map[string]any
	eventually(t, 5*time.Second, func() bool {
		a, w := logLines(t, s.logs.String(), "request", id), logLines(t, s.logs.String(), "task", id)
		if len(a) == 1 && len(w) == 1 {
			apiLine, taskLine = a[0], w[0]
		}
		return apiLine != nil
	}, "no single API request line and worker task line with request_id %s; logs:\n%s", id, s.logs)
	for k, want := range map[string]any{"tier": "api", "tenant": "acme", "model_id": "21", "queue": "default:sync",
		"route": "/api/v1/models/:id/predict", "status": 200.0} {
		if apiLine[k] != want {
			t.Errorf("API line %s = %v, want %v; line %v", k, apiLine[k], want, apiLine)
		}
	}
	for k, want := range map[string]any{"tier": "worker", "tenant": "acme", "model_id": "21", "queue": "default:sync",
		"task_id": id, "outcome": "succeeded", "rows": 1.0} {
		if taskLine[k] != want {
			t.Errorf("worker line %s = %v, want %v; line %v", k, taskLine[k], want, taskLine)
		}
	}
	for _, k := range []string{"duration_us", "queue_wait_ms"} {
		if _, ok := taskLine[k].(float64); !ok {
			t.Errorf("worker line has no %s: %v", k, taskLine)
		}
	}

	byName := map[string]tracetest.SpanStub{}
	eventually(t, 5*time.Second, func() bool {
		for _, sp := range spans.GetSpans() {
			byName[sp.Name] = sp
		}
		return len(byName) >= 4
	}, "spans: %v", byName)
	root, ok := byName["POST /api/v1/models/:id/predict"]
	if !ok {
		t.Fatalf("no API span; spans: %v", byName)
	}
	for name, parent := range map[string]string{"queue wait": root.Name, "predict task": root.Name, "inference": "predict task"} {
		sp, ok := byName[name]
		switch {
		case !ok:
			t.Errorf("no %q span", name)
		case sp.SpanContext.TraceID() != root.SpanContext.TraceID():
			t.Errorf("%q is in trace %s, the API span in %s", name, sp.SpanContext.TraceID(), root.SpanContext.TraceID())
		case sp.Parent.SpanID() != byName[parent].SpanContext.SpanID():
			t.Errorf("%q's parent is not %q", name, parent)
		}
	}
	if w := byName["queue wait"]; w.EndTime.Before(w.StartTime) {
		t.Errorf("queue wait ends before it starts: %v .. %v", w.StartTime, w.EndTime)
	}
}
