package redisconn

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Open returns a client for rawURL: redis://, rediss:// (TLS), or
// redis-sentinel://host:port,host:port/MASTER. password, when not empty,
// overrides the URL's (REDIS_PASSWORD keeps it out of the URL).
func Open(rawURL, password string) (redis.UniversalClient, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	if strings.HasPrefix(rawURL, "redis-sentinel://") {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("parse REDIS_URL: %w", redact(err))
		}
		master := strings.Trim(u.Path, "/")
		if master == "" {
			return nil, fmt.Errorf("REDIS_URL %s names no Sentinel master (redis-sentinel://HOST:PORT/MASTER)", u.Redacted())
		}
		pw, _ := u.User.Password()
		if password != "" {
			pw = password
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: master, SentinelAddrs: strings.Split(u.Host, ","), Password: pw,
			DialTimeout: 2 * time.Second, Dialer: dialPlain(2 * time.Second),
		}), nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", redact(err))
	}
	if password != "" {
		opt.Password = password
	}
	opt.DialTimeout = 2 * time.Second
	opt.PoolSize = 64
	if opt.TLSConfig == nil {
		opt.Dialer = dialPlain(opt.DialTimeout)
	}
	return redis.NewClient(opt), nil
}

// dialPlain dials TCP and hides the connection's file descriptor from
// go-redis. go-redis probes every connection it takes from its pool with a
// non-blocking MSG_PEEK read, one extra system call per command or
// pipeline (about a tenth of each tier's system calls under load). Without
// the descriptor it skips the probe, as it does for TLS connections: a
// connection the server closed then fails on use, and go-redis discards it
// and retries the command on a new one (MaxRetries), while idle connections
// are still closed after ConnMaxIdleTime.
func dialPlain(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return plainConn{c}, nil
	}
}

// plainConn is a net.Conn without SyscallConn.
type plainConn struct{ net.Conn }

// Ping checks the server answers within a second.
func Ping(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err()
}

// redact keeps a URL's password out of a parse error.
func redact(err error) error {
	if ue, ok := err.(*url.Error); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = u.Redacted()
		} else {
			ue.URL = "(unparseable URL)"
		}
	}
	return err
}
