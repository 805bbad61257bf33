package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/usage"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Usage metering (internal/usage): every authenticated /api/v1 request is
// counted, in memory, against its tenant, key, model and UTC day when it
// is answered; an answer of 400 or more also counts as an error. Workers
// count rows and compute. Reads of usage itself are not counted, so that
// reading it does not change it.

const usageRoute = "/api/v1/usage"

// usageSeries are the API's Prometheus counters of usage, by tenant.
var usageSeries = []usage.Series{
	{Name: "hokusai_api_tenant_requests_total", Help: "Authenticated /api/v1 requests answered, by tenant (reads of usage aside).",
		Value: func(c usage.Counts) float64 { return float64(c.Requests) }},
	{Name: "hokusai_api_tenant_errors_total", Help: "Authenticated /api/v1 requests answered with a status of 400 or more, by tenant.",
		Value: func(c usage.Counts) float64 { return float64(c.Errors) }},
}

// keyID is the id of the caller's key once auth has run (never the key),
// else empty.
func keyID(c echo.Context) string {
	rec, _ := c.Get("key").(apikey.Record)
	return rec.ID
}

// meter counts an answered request of an authenticated caller. The model is
// the route's when it names a registered one, else none: a made-up id never
// becomes a counter.
func (s *Server) meter(c echo.Context, path string, status int) {
	id := keyID(c)
	if id == "" || path == usageRoute {
		return
	}
	var model string
	if strings.HasPrefix(path, "/api/v1/models/:id/") {
		if _, known := s.state.get().models[c.Param("id")]; known {
			model = c.Param("id")
		}
	}
	n := usage.Counts{Requests: 1}
	if status >= http.StatusBadRequest {
		n.Errors = 1
	}
	s.usage.Add(tenantOf(c), id, model, n)
}

// usageResponse is the answer of GET /api/v1/usage.
type usageResponse struct {
	Tenant string      `json:"tenant"`
	Since  string      `json:"since"`
	Until  string      `json:"until"`
	Usage  []usage.Row `json:"usage"`
}

// getUsage answers GET /api/v1/usage?since=&until=: the caller's tenant's
// usage, by day, key id and model.
func (s *Server) getUsage() echo.HandlerFunc {
	return func(c echo.Context) error {
		since, until, param, err := usage.ParseRange(c.QueryParam("since"), c.QueryParam("until"), time.Now())
		if err != nil {
			return &Error{Code: CodeInvalidInput, Detail: "The usage range is not valid.",
				Fields: []jobs.FieldError{{Field: param, Code: jobs.CodeInvalidValue, Detail: err.Error()}}}
		}
		rows, err := usage.Read(c.Request().Context(), s.rdb, tenantOf(c), since, until)
		if err != nil {
			return s.unavailable(c, err)
		}
		if rows == nil {
			rows = []usage.Row{}
		}
		return c.JSON(http.StatusOK, usageResponse{Tenant: tenantOf(c), Since: since.Format(time.DateOnly),
			Until: until.Format(time.DateOnly), Usage: rows})
	}
}
