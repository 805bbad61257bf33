package api

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/queue"
)

// memory is what Redis said of its memory at the last refresh.
type memory struct {
	used, max int64 // bytes; max 0 is no maxmemory
}

// full reports whether new work must be refused: less than reserve bytes
// (a tenth of maxmemory when reserve is 0) are left under maxmemory. Work
// already accepted still writes its results into what is left.
func (m memory) full(reserve int64) bool {
	if m.max == 0 {
		return false
	}
	if reserve == 0 {
		reserve = m.max / 10
	}
	return m.used+reserve > m.max
}

// readMemory reads used_memory and maxmemory from INFO memory.
func readMemory(ctx context.Context, rdb redis.UniversalClient) (memory, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return memory{}, err
	}
	var m memory
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, val, _ := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		switch name {
		case "used_memory":
			m.used, _ = strconv.ParseInt(val, 10, 64)
		case "maxmemory":
			m.max, _ = strconv.ParseInt(val, 10, 64)
		}
	}
	return m, nil
}

// Retry-After of queue_full: space comes back as retention expires, which
// takes longer than a blip of the connection.
const retryAfterFull = "30"

// checkRoom refuses new work while Redis is within HOKUSAI_REDIS_RESERVE
// of its maxmemory (as of the last refresh).
func (s *Server) checkRoom() error {
	if s.state.get().mem.full(s.cfg.RedisReserve) {
		return queueFull()
	}
	return nil
}

func queueFull() *Error {
	return &Error{Code: CodeQueueFull, RetryAfter: retryAfterFull,
		Detail: "The job queue is out of room for new work; it frees space as stored results expire. Retry later."}
}

// redisError is the answer to a failed Redis write or read: queue_full
// when Redis is out of memory, queue_unavailable otherwise (unreachable, or
// the write not on enough replicas in time).
func redisError(err error) *Error {
	switch {
	case queue.IsOutOfMemory(err):
		return queueFull()
	case errors.Is(err, queue.ErrNotReplicated):
		return &Error{Code: CodeQueueUnavailable, RetryAfter: retryAfterUnavailable,
			Detail: "The job queue could not copy this work to its replicas in time. It may still run: poll /api/v1/jobs/{request_id} before you send it again."}
	}
	return queueUnavailable()
}
