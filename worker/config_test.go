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

func TestWebhookConfig(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.WebhookConcurrency != 32 || c.WebhookTenantConcurrency != 4 || c.WebhookTimeout != 10*time.Second {
		t.Errorf("defaults: %d slots, %d a tenant, %s an attempt", c.WebhookConcurrency, c.WebhookTenantConcurrency, c.WebhookTimeout)
	}
	if c := (Config{WebhookConcurrency: 2}).WithDefaults(); c.WebhookTenantConcurrency != 2 || c.Validate() != nil {
		t.Errorf("2 slots: %d a tenant (%v)", c.WebhookTenantConcurrency, c.Validate())
	}
	for name, c := range map[string]Config{
		"tenant share over the slots": {WebhookConcurrency: 2, WebhookTenantConcurrency: 3},
		"no slots":                    {WebhookConcurrency: -1},
		"negative timeout":            {WebhookTimeout: -time.Second},
	} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%s passed validation", name)
		}
	}
}
