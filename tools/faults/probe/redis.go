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
	lag      = 2 * time.Second
	loadFor  = 20 * time.Second
	killAt   = 4 * time.Second
	loadConc = 8
	loadMax  = 20000
)

// sentinelKill runs a master, a replica and a Sentinel (down after 1 s),
// kills the master with SIGKILL under async load, and counts the accepted
// jobs the promoted replica lacks. On loopback a replica is microseconds
// behind, so to make the race the probe is about, the replica first stalls
// for lag (DEBUG SLEEP: a slow disk, a congested link), the master drops
// its link to it, and the master dies half a second later: the replica
// Sentinel promotes lacks that half second of writes.
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
	replica, err := redisproc.StartWith(sub(dir, "replica"), "--replicaof", host, port, "--enable-debug-command", "local")
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
	r := newResult(fmt.Sprintf("Sentinel master kill -9, replica %s behind, %s", lag, d))
	restarted := make(chan error, 1)
	killed := killDuring(ctx, s, r, func() {
		opt, _ := redis.ParseURL(replica.URL)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		go rdb.Do(context.WithoutCancel(ctx), "debug", "sleep", lag.Seconds())
		time.Sleep(50 * time.Millisecond)
		// The master drops its link to the stalled replica, which cannot
		// reconnect until it wakes: what the master takes now, it keeps.
		mrdb := redis.NewClient(&redis.Options{Addr: master.Addr})
		defer mrdb.Close()
		if err := mrdb.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
			r.note += "could not cut the replica's link: " + err.Error() + "; "
		}
		time.Sleep(lag / 4)
		master.Stop()
		// The dead master's host comes back, empty, once Sentinel has
		// promoted the replica (back sooner, with no persistence, it would be
		// the master again and take the data with it: Redis's own warning),
		// and Sentinel makes it a replica, which replicas:1 needs again.
		go func() {
			if err := awaitSwitch(ctx, sentinel.Addr, master.Addr); err != nil {
				restarted <- err
				return
			}
			restarted <- master.Restart()
		}()
	})
	if !killed.IsZero() {
		if err := <-restarted; err != nil {
			return nil, err
		}
	}
	r.measureRecovery(ctx, s, killed)
	settle(ctx, s, r, 150*time.Second)
	return r, nil
}

// aofKill kills a Redis with AOF on (fsync policy fsync) under async load
// and restarts it from its files a second later.
func aofKill(ctx context.Context, dir, fsync string) (*result, error) {
	if fsync != "everysec" && fsync != "always" {
		return nil, fmt.Errorf("aof takes everysec or always, not %q", fsync)
	}
	s, rs, stop, err := redisStack(ctx, dir, []string{"--appendonly", "yes", "--appendfsync", fsync})
	if err != nil {
		return nil, err
	}
	defer stop()
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
	r.measureRecovery(ctx, s, killed)
	settle(ctx, s, r, 150*time.Second)
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
// after the first refusal (0 when nothing was refused). When the load
// ended first, it goes on sending a job every 250 ms, for up to a minute.
func (r *result) measureRecovery(ctx context.Context, s *stack, killed time.Time) {
	switch {
	case killed.IsZero():
		r.note += "the load ended before the kill; "
	case r.firstFail.IsZero():
		r.recovery = 0
	default:
		if r.firstBackOK.IsZero() {
			r.awaitAccept(ctx, s, time.Minute)
		}
		if r.firstBackOK.IsZero() {
			r.note += "no job was accepted within a minute of the load's end; "
			return
		}
		r.recovery = r.firstBackOK.Sub(killed)
	}
}

// awaitAccept sends a job every 250 ms until one is accepted or within
// has passed.
func (r *result) awaitAccept(ctx context.Context, s *stack, within time.Duration) {
	for end := time.Now().Add(within); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(250 * time.Millisecond) {
		code, b := s.do(ctx, "POST", "/api/v1/models/21/jobs", []byte(`{"inputs": `+lead+`}`), nil)
		r.record(code, b, time.Now())
		if code == 202 {
			return
		}
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

// awaitSwitch waits (up to 60 s) until the Sentinel at addr names a master
// other than old.
func awaitSwitch(ctx context.Context, addr, old string) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if hp, err := sc.GetMasterAddrByName(ctx, "hokusai").Result(); err == nil && len(hp) == 2 && net.JoinHostPort(hp[0], hp[1]) != old {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("sentinel %s still names %s as master after 60 s", addr, old)
}
