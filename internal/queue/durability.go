package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durability is how many replicas must hold a write before the API calls
// work accepted, or a worker calls a result stored
// (HOKUSAI_ACCEPT_DURABILITY): "none", the master's memory (and its AOF,
// as configured), or "replicas:N", N replicas besides, by Redis's WAIT. The
// zero value is "none".
type Durability struct {
	// Replicas is N of replicas:N; 0 is none.
	Replicas int
}

// ReplicaWaitTimeout bounds WAIT: past it the write is answered as not
// durable (503 queue_unavailable at the API, a retried task at a worker).
// It stays under go-redis's 3 s read timeout, so a WAIT that times out is
// an answer, not a broken connection.
const ReplicaWaitTimeout = time.Second

// ErrNotReplicated marks a write Redis made but fewer replicas than asked
// acknowledged within ReplicaWaitTimeout.
var ErrNotReplicated = errors.New("fewer replicas than HOKUSAI_ACCEPT_DURABILITY asks acknowledged the write in time")

// ParseDurability reads "none" or "replicas:N" (1 <= N <= 16); "" is none.
func ParseDurability(s string) (Durability, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "none":
		return Durability{}, nil
	}
	n, ok := strings.CutPrefix(s, "replicas:")
	r, err := strconv.Atoi(n)
	if !ok || err != nil || r < 1 || r > 16 {
		return Durability{}, fmt.Errorf("accept durability %q is neither none nor replicas:N with N from 1 to 16", s)
	}
	return Durability{Replicas: r}, nil
}

func (d Durability) String() string {
	if d.Replicas == 0 {
		return "none"
	}
	return "replicas:" + strconv.Itoa(d.Replicas)
}

// Wait queues, on pl after the writes it must cover, a WAIT for d's
// replicas, and returns the check of its answer; with none it queues
// nothing and the check passes. WAIT covers every write the connection
// made before it, and since a master replicates in one ordered stream, any
// other connection's earlier writes too.
func (d Durability) Wait(ctx context.Context, pl redis.Pipeliner) func() error {
	if d.Replicas == 0 {
		return func() error { return nil }
	}
	cmd := pl.Do(ctx, "wait", d.Replicas, ReplicaWaitTimeout.Milliseconds())
	return func() error {
		n, err := cmd.Int64()
		if err != nil {
			return fmt.Errorf("wait for %d replicas: %w", d.Replicas, err)
		}
		if n < int64(d.Replicas) {
			return fmt.Errorf("%d of %d replicas: %w", n, d.Replicas, ErrNotReplicated)
		}
		return nil
	}
}

// IsOutOfMemory reports whether err is Redis refusing a write at its
// maxmemory (noeviction), directly or through asynq, which keeps only the
// message of a script's error.
func IsOutOfMemory(err error) bool {
	return err != nil && (redis.HasErrorPrefix(err, "OOM") || strings.Contains(err.Error(), "OOM command not allowed"))
}
