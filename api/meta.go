package api

import (
	_ "embed"
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
		// Full, the API still answers reads (job status, results, which
		// callers need to make room) and refuses writes with queue_full:
		// it stays in the load balancer, and says why writes fail.
		if s.state.get().mem.full(s.cfg.RedisReserve) {
			return c.JSON(http.StatusOK, map[string]string{"status": "ready", "reason": CodeQueueFull})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
}

func (s *Server) openAPI() echo.HandlerFunc {
	return func(c echo.Context) error { return c.JSONBlob(http.StatusOK, openapiDoc) }
}
