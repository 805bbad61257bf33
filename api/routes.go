package api

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// route is one entry of the API surface.
type route struct {
	Method  string
	Path    string // Echo syntax; /openapi.json uses {id}
	Auth    bool
	Summary string
	Handler func(s *Server) echo.HandlerFunc
}

// routes is EVERY route the API serves. /openapi.json is checked against it
// by a test, both ways.
var routes = []route{
	{"GET", "/health", false, "Liveness of the API process", (*Server).health},
	{"GET", "/ready", false, "Readiness: Redis reachable", (*Server).ready},
	{"GET", "/openapi.json", false, "This API's OpenAPI 3 document", (*Server).openAPI},
	{"GET", "/docs", false, "Interactive API reference (Swagger UI): paste a key, try a call", (*Server).docs},
	{"GET", "/docs/assets/*", false, "The reference's Swagger UI files, served by the API itself", (*Server).docsAssets},
	{"GET", "/api/v1/models", true, "List models", (*Server).listModels},
	{"GET", "/api/v1/models/:id/info", true, "Describe a model and its inputs", (*Server).getModelInfo},
	{"GET", "/api/v1/models/:id/health", true, "Whether workers can serve a model now", (*Server).getModelHealth},
	{"POST", "/api/v1/models/:id/predict", true, "Predict, waiting for the result (or Prefer: respond-async)", (*Server).predict},
	{"POST", "/api/v1/models/:id/jobs", true, "Submit a predict job and return at once", (*Server).submitJob},
	{"GET", "/api/v1/jobs/:id", true, "A job's status and result", (*Server).getJob},
	{"DELETE", "/api/v1/jobs/:id", true, "Cancel a queued or running job", (*Server).cancelJob},
	{"POST", "/api/v1/models/:id/batches", true, "Submit a file of rows (CSV, JSONL or JSON) to score as a batch", (*Server).submitBatch},
	{"GET", "/api/v1/batches/:id", true, "A batch's status and progress", (*Server).getBatch},
	{"GET", "/api/v1/batches/:id/results", true, "A finished batch's results, streamed in input order", (*Server).getBatchResults},
	{"DELETE", "/api/v1/batches/:id", true, "Cancel a batch's remaining chunks", (*Server).cancelBatch},
	{"POST", "/api/v1/schedules", true, "Create a schedule: an S3 batch run on a cron spec in a time zone", (*Server).createSchedule},
	{"GET", "/api/v1/schedules", true, "The caller's tenant's schedules, their next and latest runs", (*Server).listSchedules},
	{"DELETE", "/api/v1/schedules/:id", true, "Delete a schedule (batches it started go on)", (*Server).deleteSchedule},
	{"GET", usageRoute, true, "The caller's tenant's usage by day, key id and model (since, until: YYYY-MM-DD)", (*Server).getUsage},
	{"GET", "/metrics", false, "Prometheus metrics of the API and the queues", (*Server).metricsHandler},
	{"GET", "/ops/workers", false, "Workers, pools, models and readiness (HTML; admin token)", (*Server).opsWorkers},
	{"GET", "/ops/queues", false, "The asynq dashboard (HTML; admin token)", (*Server).opsQueues},
	{"GET", "/ops/queues/*", false, "The dashboard's pages, assets and JSON API (admin token)", (*Server).opsQueues},
	{"POST", "/ops/queues/*", false, "Dashboard actions: retry, archive, pause (admin write token)", (*Server).opsQueues},
	{"DELETE", "/ops/queues/*", false, "Dashboard actions: delete tasks or queues (admin write token)", (*Server).opsQueues},
}

// withHead is rs as served: each GET route also answers HEAD, with the
// status and headers of GET and no body (net/http drops what the handler
// writes). The table and /openapi.json leave HEAD implicit, as HTTP does;
// Echo does not add it.
func withHead(rs []route) []route {
	out := slices.Clip(rs)
	for _, r := range rs {
		if r.Method == http.MethodGet {
			r.Method = http.MethodHead
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) addRoutes(e *echo.Echo) {
	for _, r := range s.routes {
		var mw []echo.MiddlewareFunc
		if r.Auth {
			mw = append(mw, s.auth)
		}
		e.Add(r.Method, r.Path, r.Handler(s), mw...)
	}
}
