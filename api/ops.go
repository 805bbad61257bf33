package api

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// opsQueuesPath is where the asynq dashboard lives.
const opsQueuesPath = "/ops/queues"

// ops holds the operator pages: the asynq dashboard in a read-only and, when
// a write token is configured, a read-write flavour.
type ops struct {
	readOnly  http.Handler
	readWrite http.Handler // nil without Config.AdminWriteToken
	workers   *template.Template
}

//go:embed ops_workers.html
var opsFiles embed.FS

// sharedRedis hands the API's own go-redis client to asynqmon, which takes
// an asynq.RedisConnOpt, so the dashboard reads whatever Redis the API
// does (single or Sentinel) and opens no connections of its own.
type sharedRedis struct{ redis.UniversalClient }

func (r sharedRedis) MakeRedisClient() any { return r.UniversalClient }

func newOps(cfg Config, rdb redis.UniversalClient) *ops {
	if cfg.AdminToken == "" {
		return nil
	}
	o := &ops{
		readOnly: asynqmon.New(asynqmon.Options{RootPath: opsQueuesPath, RedisConnOpt: sharedRedis{rdb}, ReadOnly: true}),
		workers: template.Must(template.New("ops_workers.html").Funcs(template.FuncMap{
			"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
		}).ParseFS(opsFiles, "ops_workers.html")),
	}
	if cfg.AdminWriteToken != "" {
		o.readWrite = asynqmon.New(asynqmon.Options{RootPath: opsQueuesPath, RedisConnOpt: sharedRedis{rdb}})
	}
	return o
}

// opsAuth guards the /ops pages with the admin tokens, given as the
// password of Basic auth (any user name, so a browser's prompt works) or as
// a Bearer token. The write token grants what the admin token does, plus
// the dashboard's actions (retry, delete, pause). Without an admin token
// configured the pages do not exist.
func (s *Server) opsAuth(next func(c echo.Context, write bool) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.ops == nil {
			return errorf(CodeNotFound, "The operations pages are off; set HOKUSAI_ADMIN_TOKEN to turn them on.")
		}
		cred := adminCredential(c.Request())
		switch {
		case s.cfg.AdminWriteToken != "" && secretEqual(cred, s.cfg.AdminWriteToken):
			return next(c, true)
		case secretEqual(cred, s.cfg.AdminToken):
			return next(c, false)
		}
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="hokusai ops", charset="UTF-8"`)
		return errorf(CodeUnauthorized, "The operations pages need the admin token, as the Basic auth password or a Bearer token.")
	}
}

func adminCredential(r *http.Request) string {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return ""
}

func secretEqual(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// opsQueues serves the asynq dashboard under /ops/queues: its page, assets
// and JSON API.
func (s *Server) opsQueues() echo.HandlerFunc {
	return s.opsAuth(func(c echo.Context, write bool) error {
		h := s.ops.readOnly
		if write && s.ops.readWrite != nil {
			h = s.ops.readWrite
		}
		req := c.Request()
		if req.Method == http.MethodHead { // asynqmon's routes take GET only
			req = req.Clone(req.Context())
			req.Method = http.MethodGet
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		w := &dashboardWriter{ResponseWriter: c.Response()}
		h.ServeHTTP(w, req)
		if w.failed != 0 {
			e := s.unavailable(c, fmt.Errorf("dashboard answered %d: %s", w.failed, w.text.String()))
			e.Plain = fromDashboardPage(req)
			return e
		}
		return nil
	})
}

// fromDashboardPage says r is a call the dashboard's page made from its
// scripts: browsers mark those Sec-Fetch-Site: same-origin and
// Sec-Fetch-Dest: empty, and tools send neither. The page puts the body of
// a failed call in its state and renders it as text: a JSON object (the
// page's HTTP library parses any JSON body) takes its error banner away,
// and blanks its task page. So the page gets the error as text, and every
// other client JSON.
func fromDashboardPage(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") == "same-origin" && r.Header.Get("Sec-Fetch-Dest") == "empty"
}

// dashboardWriter passes asynqmon's answers through but for one with a 5xx
// status, which it holds back: asynqmon answers a failed Redis read with a
// text/plain 500 of the Redis error, which names hosts, and the API answers
// queue_unavailable instead. The first of that text is kept for the log.
type dashboardWriter struct {
	http.ResponseWriter
	failed int
	text   bytes.Buffer
}

func (w *dashboardWriter) WriteHeader(code int) {
	if code >= 500 {
		w.failed = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *dashboardWriter) Write(p []byte) (int, error) {
	if w.failed == 0 {
		return w.ResponseWriter.Write(p)
	}
	w.text.Write(p[:min(len(p), max(0, 512-w.text.Len()))])
	return len(p), nil
}

func (w *dashboardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// workersPage is what /ops/workers renders.
type workersPage struct {
	At      time.Time
	Stale   string // the last refresh's error, when the view is old
	Pools   []poolRow
	Workers []jobs.Heartbeat
	Write   bool
}

type poolRow struct {
	Pool         string
	Models       []string
	Workers      int
	Ready        int
	NotReadyWhy  []string
	QueuesPrefix string
}

// opsWorkers serves /ops/workers: the workers' heartbeats as one HTML page,
// rendered on the server from the API's in-memory view (no Redis trip).
func (s *Server) opsWorkers() echo.HandlerFunc {
	return s.opsAuth(func(c echo.Context, write bool) error {
		snap := s.state.get()
		page := workersPage{At: snap.at, Workers: slices.Clone(snap.workers), Write: write}
		if snap.err != nil {
			page.Stale = snap.err.Error()
		}
		slices.SortFunc(page.Workers, func(a, b jobs.Heartbeat) int {
			return strings.Compare(a.Pool+"\x00"+a.WorkerID, b.Pool+"\x00"+b.WorkerID)
		})
		pools := map[string]*poolRow{}
		row := func(pool string) *poolRow {
			if pools[pool] == nil {
				pools[pool] = &poolRow{Pool: pool, QueuesPrefix: opsQueuesPath + "/queues/" + jobs.Queue(pool, jobs.LaneSync)}
			}
			return pools[pool]
		}
		for _, id := range snap.order {
			p := row(snap.models[id].Pool)
			p.Models = append(p.Models, id)
		}
		for _, hb := range page.Workers {
			p := row(hb.Pool)
			p.Workers++
			if hb.State == jobs.StateReady {
				p.Ready++
			}
			for _, r := range hb.Reasons {
				if !slices.Contains(p.NotReadyWhy, r) {
					p.NotReadyWhy = append(p.NotReadyWhy, r)
				}
			}
		}
		for _, p := range pools {
			page.Pools = append(page.Pools, *p)
		}
		slices.SortFunc(page.Pools, func(a, b poolRow) int { return strings.Compare(a.Pool, b.Pool) })
		c.Response().Header().Set("Cache-Control", "no-store")
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
		c.Response().WriteHeader(http.StatusOK)
		return s.ops.workers.Execute(c.Response(), page)
	})
}
