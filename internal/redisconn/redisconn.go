package redisconn

import (
	"context"
	"fmt"
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
			DialTimeout: 2 * time.Second,
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
	return redis.NewClient(opt), nil
}

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
