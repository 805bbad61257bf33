package api

import (
	_ "embed"
	"html/template"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/internal/redisconn"
)

//go:embed openapi.json
var openapiDoc []byte

// health answers GET /health: the process serves HTTP. It does not touch
// Redis, so a Redis outage never makes the load balancer kill the API.
func (s *Server) health() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// ready answers GET /ready: Redis answers, so requests can be queued.
func (s *Server) ready() echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := redisconn.Ping(c.Request().Context(), s.rdb); err != nil {
			s.log.Warn("not ready", "err", err.Error())
			c.Response().Header().Set(headerRetryAfter, retryAfterUnavailable)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": "redis_unreachable"})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
}

func (s *Server) openAPI() echo.HandlerFunc {
	return func(c echo.Context) error { return c.JSONBlob(http.StatusOK, openapiDoc) }
}

var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hokusai API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .25rem}td,th{text-align:left;padding:.25rem .75rem .25rem 0;vertical-align:top}</style>
</head><body><h1>Hokusai inference API</h1>
<p>Send your key as <code>X-API-Key</code> or <code>Authorization: Bearer</code>. Errors are JSON
<code>{"code", "detail", "request_id"}</code>. The machine-readable reference is <a href="/openapi.json">/openapi.json</a>.</p>
<table><tr><th>Method</th><th>Path</th><th>Key</th><th>What</th></tr>
{{range .}}<tr><td>{{.Method}}</td><td><code>{{.Path}}</code></td><td>{{if .Auth}}yes{{end}}</td><td>{{.Summary}}</td></tr>
{{end}}</table></body></html>`))

func (s *Server) docs() echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
		c.Response().WriteHeader(http.StatusOK)
		return docsPage.Execute(c.Response(), s.routes)
	}
}
