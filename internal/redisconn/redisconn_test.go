package redisconn

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		url, password string
		addr, wantPW  string
	}{
		{url: "", addr: "127.0.0.1:6379"},
		{url: "redis://:urlpw@cache:6380/2", addr: "cache:6380", wantPW: "urlpw"},
		{url: "rediss://:urlpw@cache:6380/0", password: "envpw", addr: "cache:6380", wantPW: "envpw"},
	} {
		c, err := Open(tc.url, tc.password)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		opt := c.(*redis.Client).Options()
		if opt.Addr != tc.addr || opt.Password != tc.wantPW {
			t.Errorf("%s: addr %s password %q, want %s %q", tc.url, opt.Addr, opt.Password, tc.addr, tc.wantPW)
		}
		c.Close()
	}
	c, err := Open("redis-sentinel://s1:26379,s2:26379/mymaster", "pw")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestOpenErrorsHidePasswords(t *testing.T) {
	for _, u := range []string{"redis://:s3cr3tpw@host:notaport/0", "redis-sentinel://:s3cr3tpw@h:1", "mysql://:s3cr3tpw@h:1"} {
		_, err := Open(u, "")
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3tpw") {
			t.Errorf("%s: error shows the password: %v", u, err)
		}
	}
}

// Connections hide their descriptor from go-redis (so it skips its
// per-command MSG_PEEK probe), and a connection the server dropped is
// replaced on use without the caller seeing an error.
func TestPlainConnections(t *testing.T) {
	if srv == nil {
		t.Skip("no redis-server available")
	}
	ctx := context.Background()
	rdb, err := Open(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	c, err := rdb.(*redis.Client).Options().Dialer(ctx, "tcp", rdb.(*redis.Client).Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(syscall.Conn); ok {
		t.Error("dialed connection still exposes SyscallConn")
	}
	c.Close()
	for i := range 20 {
		if err := rdb.Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	admin := redistest.Client(t, srv)
	if n, err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result(); err != nil || n == 0 {
		t.Fatalf("CLIENT KILL: %d %v", n, err)
	}
	for i := range 20 {
		if err := rdb.Incr(ctx, "n").Err(); err != nil {
			t.Fatalf("command %d after the server dropped the connections: %v", i, err)
		}
	}
	if n := admin.Get(ctx, "n").Val(); n != "20" {
		t.Errorf("n = %s after 20 INCRs, want 20 (a retried command ran twice or not at all)", n)
	}
}
