package ratelimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"1000/h": {1000, time.Hour}, " 5/s ": {5, time.Second}, "60/m": {60, time.Minute},
		"10000/d": {10000, 24 * time.Hour}, "unlimited": {}, "Unlimited": {},
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseLimit(got.String()); back != got {
			t.Errorf("%v does not round-trip through %q", got, got.String())
		}
	}
	for _, bad := range []string{"", "1000", "0/h", "-1/h", "1000/w", "x/h", "1/", "2000000000/s"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}

// A limit lets N through at once, refuses the next with the wait until one
// unit has refilled, and refills at N per period; a refusal charges
// nothing, and the tighter of two buckets binds.
func TestTake(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ctx := t.Context()
	now := time.UnixMilli(1_800_000_000_000)
	key := Bucket{Policy: "key", Key: "rl:test:key", Limit: Limit{N: 5, Per: time.Hour}}
	tenant := Bucket{Policy: "tenant", Key: "rl:test:tenant", Limit: Limit{N: 8, Per: time.Hour}}
	g := NewGatherer(rdb)
	take := func(at time.Time, cost int64, b ...Bucket) Decision {
		t.Helper()
		d, err := g.Take(ctx, b, cost, at)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := range 5 {
		if d := take(now, 1, key, tenant); !d.Allowed || d.Remaining != int64(4-i) || d.Binding.Policy != "key" {
			t.Fatalf("request %d: %+v", i+1, d)
		}
	}
	d := take(now, 1, key, tenant)
	if d.Allowed || d.RetryAfter != 12*time.Minute || d.Binding.Policy != "key" {
		t.Fatalf("the 6th: %+v, want refused for 12m by the key", d)
	}
	h := http.Header{}
	d.SetHeaders(h)
	if got := h.Get("RateLimit-Policy"); got != `"key";q=5;w=3600, "tenant";q=8;w=3600` {
		t.Errorf("RateLimit-Policy %s", got)
	}
	if got := h.Get("RateLimit"); got != `"key";r=0;t=3600` {
		t.Errorf("RateLimit %s", got)
	}
	if got := h.Get("Retry-After"); got != "720" {
		t.Errorf("Retry-After %s", got)
	}
	// The refusal charged the tenant nothing: 3 more fit on it alone.
	for i := range 3 {
		if d := take(now, 1, tenant); !d.Allowed {
			t.Fatalf("tenant request %d after the key's refusal: %+v", i+1, d)
		}
	}
	if d := take(now, 1, tenant); d.Allowed {
		t.Fatalf("the tenant's 9th: %+v", d)
	}
	// 12 minutes on, one unit has refilled on the key.
	later := now.Add(12 * time.Minute)
	if d := take(later, 1, key); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after the refill: %+v", d)
	}
	// A cost larger than the room is refused whole.
	if d := take(now.Add(time.Hour), 6, Bucket{Policy: "key", Key: "rl:test:other", Limit: Limit{N: 5, Per: time.Hour}}); d.Allowed {
		t.Fatalf("6 units through a 5-unit bucket: %+v", d)
	}
	// Unlimited buckets cost no round trip and say nothing.
	if d := take(now, 1, Bucket{Policy: "key", Key: "rl:test:free"}); !d.Allowed || len(d.Policies) != 0 {
		t.Fatalf("unlimited: %+v", d)
	}
	if n := rdb.Exists(ctx, "rl:test:free").Val(); n != 0 {
		t.Error("an unlimited bucket was stored")
	}
}
