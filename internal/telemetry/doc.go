// Package telemetry sets up OpenTelemetry tracing for both binaries and
// carries W3C trace context across the queue in a task payload's
// traceparent string.
//
// Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then Setup returns a nil
// provider and the tiers skip every span, so the request path pays nothing.
//
// It imports OpenTelemetry and the standard library only; never api/,
// worker/ or jobs/.
package telemetry
