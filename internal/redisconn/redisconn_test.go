package redisconn

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

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
