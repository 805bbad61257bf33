// Package service sets up what the binaries share:
//
//   - Env reads configuration from the environment (os.Getenv in main, a map
//     in tests) with defaults, and errors that name the variable;
//   - AddFlags and Start: the -redis-url, -log-format and -log-level flags
//     with their environment defaults, then a server process's logger, Redis
//     client and tracing;
//   - NewLogger builds the process's *slog.Logger: JSON lines by default,
//     text for people at a terminal;
//   - SetupTracing sets up OpenTelemetry tracing, and Traceparent,
//     WithTraceparent and TraceFromHeaders carry W3C trace context across
//     the queue in a task payload's traceparent string. Tracing is off unless
//     OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is
//     set; when it is off, SetupTracing returns a nil provider and the tiers
//     skip every span, so the request path pays nothing;
//   - Healthcheck is the `healthcheck` subcommand both server binaries carry,
//     since minimal images have no curl.
//
// Of the project it imports only internal/redisconn; never api/, worker/ or
// jobs/.
package service
