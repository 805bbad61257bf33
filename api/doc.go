// Package api is the HTTP tier: an Echo server that authenticates partners,
// validates predict requests against the schema a worker published, enqueues
// them in Redis with asynq and answers synchronously (waiting for the
// worker's completion message) or as a job.
//
// Every route is registered in routes.go, in one table that /openapi.json is
// checked against. Every error, on every path, is JSON with a stable code
// (errors.go). /docs is Swagger UI on that document, its files embedded from
// a Go module and served by the API itself (docs.go). After an authenticated
// request's answer, a body the handler left unread is drained within bounds,
// so clients that write it whole before reading still get the answer
// (drain.go).
//
// Operations: /metrics (metrics.go: requests, sync waits, rejections and the
// queues, on a registry of the server's own), /ops/queues (the asynq
// dashboard) and /ops/workers behind the admin tokens (ops.go), one log line
// per request (server.go), and a server span per request when a tracer
// provider is configured (trace.go).
//
// api never holds the HuggingFace token and never loads a model: it must not
// import worker/... (a test checks the API binary's dependencies). It imports
// jobs/ and internal/.
package api
