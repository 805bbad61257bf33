package api

import (
	"context"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// replies multiplexes one Redis subscription per API process to the requests
// waiting on it: a request registers its id before enqueueing, and the
// worker's completion message on this process's channel is handed to it.
type replies struct {
	channel string
	log     *slog.Logger

	mu      sync.Mutex
	waiting map[string]chan jobs.Outcome
}

func newReplies(instance string, log *slog.Logger) *replies {
	return &replies{channel: jobs.ReplyChannel(instance), log: log, waiting: map[string]chan jobs.Outcome{}}
}

// expect registers a waiter for id; cancel must be called when done waiting.
func (r *replies) expect(id string) (<-chan jobs.Outcome, func()) {
	ch := make(chan jobs.Outcome, 1)
	r.mu.Lock()
	r.waiting[id] = ch
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.waiting, id)
		r.mu.Unlock()
	}
}

func (r *replies) deliver(o jobs.Outcome) {
	r.mu.Lock()
	ch, ok := r.waiting[o.RequestID]
	delete(r.waiting, o.RequestID)
	r.mu.Unlock()
	if ok {
		ch <- o
	}
}

// run reads the subscription until ctx ends. go-redis re-subscribes by itself
// after Redis restarts.
func (r *replies) run(ctx context.Context, rdb redis.UniversalClient, ready chan<- struct{}) {
	sub := rdb.Subscribe(ctx, r.channel)
	defer sub.Close()
	// Wait for the subscription so no reply published after start is missed;
	// if Redis is down now, go-redis keeps trying in Channel().
	if _, err := sub.Receive(ctx); err != nil {
		r.log.Warn("reply channel not subscribed yet", "err", err.Error())
	}
	close(ready)
	msgs := sub.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			os, err := jobs.DecodeReply([]byte(m.Payload))
			if err != nil {
				r.log.Warn("bad reply message", "err", err.Error())
				continue
			}
			for _, o := range os {
				r.deliver(o)
			}
		}
	}
}
