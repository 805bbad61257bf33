package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
	"github.com/hokusai-ai/inference-queue/internal/redisproc"
)

// loadFor is how long the async load of the kill probes lasts, and killAt
// when in it the fault comes.
const (
	loadFor  = 12 * time.Second
	killAt   = 4 * time.Second
	loadConc = 8
	loadMax  = 20000
)

// sentinelKill runs a master, a replica and a Sentinel (down after 1 s),
// kills the master with SIGKILL under async load, and counts the accepted
// jobs the promoted replica lacks.
func sentinelKill(ctx context.Context, dir, mode string) (*result, error) {
	d, err := queue.ParseDurability(mode)
	if err != nil {
		return nil, err
	}
	master, err := redisproc.StartWith(sub(dir, "master"))
	if err != nil {
		return nil, err
	}
	defer master.Stop()
	host, port, _ := net.SplitHostPort(master.Addr)
	replica, err := redisproc.StartWith(sub(dir, "replica"), "--replicaof", host, port)
	if err != nil {
		return nil, err
	}
	defer replica.Stop()
	if err := waitReplica(ctx, master.URL); err != nil {
		return nil, err
	}
	sentinel, err := redisproc.StartSentinel(sub(dir, "sentinel"), master, "hokusai", time.Second)
	if err != nil {
		return nil, err
	}
	defer sentinel.Stop()
	s, err := startStack(ctx, dir, sentinel.URL, "HOKUSAI_ACCEPT_DURABILITY="+d.String())
	if err != nil {
		return nil, err
	}
	defer s.stop()
	r := newResult("Sentinel master kill -9, " + d.String())
	killed := killDuring(ctx, s, r, master.Stop)
	settle(ctx, s, r, 150*time.Second)
	r.measureRecovery(killed)
	return r, nil
}

// aofKill kills a Redis with AOF on (fsync policy fsync) under async load
// and restarts it from its files a second later.
func aofKill(ctx context.Context, dir, fsync string) (*result, error) {
	if fsync != "everysec" && fsync != "always" {
		return nil, fmt.Errorf("aof takes everysec or always, not %q", fsync)
	}
	rs, err := redisproc.StartWith(sub(dir, "redis"), "--appendonly", "yes", "--appendfsync", fsync)
	if err != nil {
		return nil, err
	}
	defer rs.Stop()
	s, err := startStack(ctx, dir, rs.URL)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	r := newResult("Redis kill -9 and restart, AOF appendfsync " + fsync)
	var restartErr error
	killed := killDuring(ctx, s, r, func() {
		rs.Stop()
		time.Sleep(time.Second)
		restartErr = rs.Restart()
	})
	if restartErr != nil {
		return nil, restartErr
	}
	settle(ctx, s, r, 150*time.Second)
	r.measureRecovery(killed)
	return r, nil
}

// killDuring runs the async load for loadFor and calls kill killAt into it;
// it returns when kill was called.
func killDuring(ctx context.Context, s *stack, r *result, kill func()) time.Time {
	lctx, cancel := context.WithTimeout(ctx, loadFor)
	defer cancel()
	var killed time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(killAt):
			killed = time.Now()
			kill()
		case <-lctx.Done():
		}
	}()
	flood(lctx, s, r, loadConc, loadMax, []byte(`{"inputs": `+lead+`}`))
	<-done
	return killed
}

// measureRecovery is the time from the kill to the first job accepted
// after the first refusal (0 when nothing was refused).
func (r *result) measureRecovery(killed time.Time) {
	switch {
	case killed.IsZero():
		r.note += "the load ended before the kill; "
	case r.firstFail.IsZero():
		r.recovery = 0
	case r.firstBackOK.IsZero():
		r.note += "no job was accepted after the fault; "
	default:
		r.recovery = r.firstBackOK.Sub(killed)
	}
}

// waitReplica waits until the master at url has an online replica.
func waitReplica(ctx context.Context, url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if info := rdb.Info(ctx, "replication").Val(); strings.Contains(info, "state=online") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the replica of %s never came online", url)
}

// sub makes and returns dir/name.
func sub(dir, name string) string {
	d := filepath.Join(dir, name)
	_ = os.MkdirAll(d, 0o700)
	return d
}
