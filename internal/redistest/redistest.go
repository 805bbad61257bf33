package redistest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redisproc"
)

// Server is the package's Redis: one redisproc started, or REDIS_URL's.
type Server = redisproc.Server

// Main is a test package's TestMain body: it starts one server for the whole
// package (unless REDIS_URL is set), runs the tests and stops it.
func Main(m *testing.M, srv **Server) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		*srv = &Server{URL: u}
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := redisproc.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redistest:", err)
		if os.Getenv("CI") != "" {
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "redistest: no Redis, tests that need it will skip (set CI to make this fatal)")
	}
	*srv = s
	code := m.Run()
	if s != nil {
		s.Stop()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Client returns a client of srv on a flushed database, closed at test end.
func Client(t testing.TB, srv *Server) redis.UniversalClient {
	t.Helper()
	if srv == nil {
		t.Skip("no redis-server available")
	}
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatalf("parse %s: %v", srv.URL, err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	return rdb
}
