package worker

import (
	"testing"
	"time"
)

func TestRetryDelayDoublesToACap(t *testing.T) {
	c := Config{TaskRetryDelay: time.Second}
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 5: 32 * time.Second,
		6: 64 * time.Second, 9: 64 * time.Second, 1000: 64 * time.Second} {
		if got := c.retryDelay(n, nil, nil); got != want {
			t.Errorf("retry %d: %s, want %s", n, got, want)
		}
	}
	if err := (Config{Concurrency: 1, WakeTimeout: time.Second, PollInterval: time.Millisecond, TaskRetryDelay: -1}).Validate(); err == nil {
		t.Error("a negative retry delay passed validation")
	}
}
