package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/service"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// noSpan is what span hands out when there is nothing to trace; ending it
// does nothing.
var noSpan = trace.SpanFromContext(context.Background())

// traceTask continues the API's trace named by the task's traceparent: a
// queue-wait span from enqueue to pickup (start), then the task's span,
// which it returns. Without tracing or a traceparent it does nothing.
func (w *Worker) traceTask(ctx context.Context, p jobs.PredictPayload, start time.Time) (context.Context, trace.Span) {
	if w.tracer == nil || p.Trace == "" {
		return ctx, noSpan
	}
	queue, _ := asynq.GetQueueName(ctx)
	attrs := trace.WithAttributes(attribute.String("messaging.destination.name", queue),
		attribute.String("hokusai.request_id", p.RequestID), attribute.String("hokusai.model_id", p.ModelID))
	parent := service.WithTraceparent(ctx, p.Trace)
	_, wait := w.tracer.Start(parent, "queue wait", trace.WithTimestamp(time.UnixMilli(p.EnqueuedAt)), attrs)
	wait.End(trace.WithTimestamp(start))
	return w.tracer.Start(parent, "predict task", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start), attrs)
}

// span opens a child of the span in ctx, only when there is one.
func (w *Worker) span(ctx context.Context, name string) trace.Span {
	if w.tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return noSpan
	}
	_, s := w.tracer.Start(ctx, name)
	return s
}
