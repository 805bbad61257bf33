package api

import (
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hokusai-ai/inference-queue/internal/service"
)

// traceRequest opens the server span of a request, continuing the caller's
// trace when it sent a traceparent header. NewServer installs it only when
// tracing is on.
func (s *Server) traceRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		ctx := service.TraceFromHeaders(req.Context(), propagation.HeaderCarrier(req.Header))
		ctx, span := s.tracer.Start(ctx, req.Method+" "+c.Path(), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", c.Path()),
				attribute.String("hokusai.request_id", requestID(c))))
		defer span.End()
		if q := req.URL.RawQuery; q != "" {
			// Redacted like the access log: tracing backends keep text too.
			span.SetAttributes(attribute.String("url.query", redactQuery(q)))
		}
		c.SetRequest(req.WithContext(ctx))
		err := next(c)
		status := c.Response().Status
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		return err
	}
}

// traceparent is the W3C trace context a task carries to the worker: the
// request's span, or "" when tracing is off.
func (s *Server) traceparent(c echo.Context) string {
	if s.tracer == nil {
		return ""
	}
	return service.Traceparent(c.Request().Context())
}
