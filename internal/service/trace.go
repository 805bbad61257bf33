package service

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SetupTracing returns the tracer provider the environment asks for and a
// function that flushes buffered spans (for up to five seconds, logging a
// failure to log) and stops it. With no OTLP endpoint set it returns a nil
// provider (tracing off) and a stop that does nothing.
//
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full URL of the OTLP/HTTP traces endpoint
//	OTEL_EXPORTER_OTLP_ENDPOINT         base URL; /v1/traces is appended
//	OTEL_SERVICE_NAME                   overrides service
//
// The exporter's other OTEL_EXPORTER_OTLP_* variables (headers, timeout,
// compression) are read by the exporter itself.
func SetupTracing(ctx context.Context, service string, getenv func(string) string, log *slog.Logger) (trace.TracerProvider, func(), error) {
	url := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if url == "" {
		if base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); base != "" {
			url = strings.TrimSuffix(base, "/") + "/v1/traces"
		}
	}
	if url == "" {
		return nil, func() {}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(url))
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter for %s: %w", url, err)
	}
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		service = name
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("trace export did not finish", "err", err.Error())
		}
	}
	return tp, stop, nil
}

var w3c propagation.TraceContext

// Traceparent returns the W3C traceparent of the span in ctx, or "" when
// ctx holds no sampled-or-not valid span.
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceparent returns ctx with the remote span context traceparent
// names; a malformed or empty value leaves ctx as it is.
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceFromHeaders returns ctx with the caller's trace context from W3C
// traceparent/tracestate headers, if any.
func TraceFromHeaders(ctx context.Context, h propagation.TextMapCarrier) context.Context {
	return w3c.Extract(ctx, h)
}
