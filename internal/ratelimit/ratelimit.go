package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is a quota: N units per Per, N of them available at once. The zero
// Limit is unlimited.
type Limit struct {
	N   int64
	Per time.Duration
}

// Unlimited reports whether l sets no bound.
func (l Limit) Unlimited() bool { return l.N <= 0 }

var units = []struct {
	name string
	d    time.Duration
}{{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}

// ParseLimit reads "N/s", "N/m", "N/h", "N/d" or "unlimited".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "unlimited") {
		return Limit{}, nil
	}
	n, unit, ok := strings.Cut(s, "/")
	v, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || v < 1 || v > 1e9 {
		return Limit{}, fmt.Errorf("limit %q: want N/s, N/m, N/h or N/d with N from 1 to 1e9, or unlimited", s)
	}
	for _, u := range units {
		if unit == u.name {
			return Limit{N: v, Per: u.d}, nil
		}
	}
	return Limit{}, fmt.Errorf("limit %q: the unit must be s, m, h or d", s)
}

func (l Limit) String() string {
	if l.Unlimited() {
		return "unlimited"
	}
	for i := len(units) - 1; i >= 0; i-- {
		if l.Per == units[i].d {
			return strconv.FormatInt(l.N, 10) + "/" + units[i].name
		}
	}
	return strconv.FormatInt(l.N, 10) + "/" + l.Per.String()
}

// Bucket is one quota a request is counted against: a policy name for the
// RateLimit headers ("key", "tenant"), its Redis key and its limit.
type Bucket struct {
	Policy string
	Key    string
	Limit  Limit
}

// BatchRows names the quotas of batch rows (the requests' have no name).
const BatchRows = "batch_rows"

// Buckets are the buckets of one kind of quota (name: "" for requests,
// BatchRows) of key keyID and of its tenant, whose limits are key and
// tenantLimit. Both share one hash tag per tenant, so Take touches one
// Cluster node.
func Buckets(name, tenant, keyID string, key, tenantLimit Limit) []Bucket {
	base, policy := "hokusai:ratelimit:{"+tenant+"}:", ""
	if name != "" {
		base, policy = base+name+":", name+"-"
	}
	return []Bucket{
		{Policy: policy + "key", Key: base + "key:" + keyID, Limit: key},
		{Policy: policy + "tenant", Key: base + "tenant", Limit: tenantLimit},
	}
}

// Decision is the outcome of Take.
type Decision struct {
	Allowed bool
	// Binding is the bucket with the least room left: the one whose numbers
	// the RateLimit header shows, and that refused when one did.
	Binding   Bucket
	Remaining int64
	// Reset is how long until Binding is full again; RetryAfter, when the
	// request was refused, how long until it would be allowed.
	Reset, RetryAfter time.Duration
	// Policies are every bucket the request was counted against.
	Policies []Bucket
}

// take is GCRA over every bucket at once: each bucket's key holds its
// theoretical arrival time (TAT, ms). A request of cost c is allowed when
// every bucket has room, and only then is every bucket charged, so a
// refusal costs no bucket anything. KEYS are the buckets; ARGV[1] is now
// (ms), ARGV[2] the cost, then per bucket its emission interval (ms per
// unit) and capacity (units). It returns, for the bucket with least room,
// {allowed, index, remaining, reset ms, retry-after ms}.
var take = redis.NewScript(`
local now, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local tats, worst, worstRoom = {}, 1, math.huge
local allowed = 1
for i = 1, #KEYS do
  local t, cap = tonumber(ARGV[1 + 2*i]), tonumber(ARGV[2 + 2*i])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or 0), now)
  local new = tat + cost * t
  local room = (cap * t - (new - now)) / t
  tats[i] = new
  if room < 0 then allowed = 0 end
  if room < worstRoom then worst, worstRoom = i, room end
end
local t, cap = tonumber(ARGV[1 + 2*worst]), tonumber(ARGV[2 + 2*worst])
if allowed == 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[worst]) or 0), now)
  return {0, worst, 0, math.ceil(tat - now), math.ceil(tats[worst] - cap * t - now)}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.max(1, math.ceil(tats[i] - now)))
end
return {1, worst, math.floor(worstRoom), math.ceil(tats[worst] - now), 0}`)

// Take counts a request of cost units against every bucket that has a
// limit, in one round trip, exact across API processes. With no limited
// bucket it allows without touching Redis.
func Take(ctx context.Context, rdb redis.UniversalClient, buckets []Bucket, cost int64, now time.Time) (Decision, error) {
	limited := Limited(buckets)
	keys := make([]string, len(limited))
	args := []any{now.UnixMilli(), cost}
	for i, b := range limited {
		keys[i] = b.Key
		args = append(args, float64(b.Limit.Per.Milliseconds())/float64(b.Limit.N), b.Limit.N)
	}
	if len(limited) == 0 {
		return Decision{Allowed: true}, nil
	}
	res, err := take.Run(ctx, rdb, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(res) != 5 || res[1] < 1 || int(res[1]) > len(limited) {
		return Decision{}, errors.New("rate limit script: unexpected answer")
	}
	return Decision{Allowed: res[0] == 1, Binding: limited[res[1]-1], Remaining: res[2],
		Reset: time.Duration(res[3]) * time.Millisecond, RetryAfter: time.Duration(res[4]) * time.Millisecond,
		Policies: limited}, nil
}

// Limited is buckets without the unlimited ones: those a request counts
// against.
func Limited(buckets []Bucket) []Bucket {
	var out []Bucket
	for _, b := range buckets {
		if !b.Limit.Unlimited() {
			out = append(out, b)
		}
	}
	return out
}

// Refusal is the decision Take would give again, wait before bucket b
// admits one more, without asking Redis: a GCRA bucket that refused is
// full again N-1 emission intervals after it admits one.
func Refusal(b Bucket, wait time.Duration, buckets []Bucket) Decision {
	full := wait + b.Limit.Per/time.Duration(b.Limit.N)*time.Duration(b.Limit.N-1)
	return Decision{Binding: b, RetryAfter: wait, Reset: full, Policies: Limited(buckets)}
}

// SetHeaders writes d as the IETF RateLimit-Policy and RateLimit headers
// (draft-ietf-httpapi-ratelimit-headers), and Retry-After on a refusal.
// A decision with no policy writes nothing.
func (d Decision) SetHeaders(h http.Header) {
	if len(d.Policies) == 0 {
		return
	}
	policies := make([]string, len(d.Policies))
	for i, p := range d.Policies {
		policies[i] = fmt.Sprintf("%q;q=%d;w=%d", p.Policy, p.Limit.N, int64(p.Limit.Per/time.Second))
	}
	h.Set("RateLimit-Policy", strings.Join(policies, ", "))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", d.Binding.Policy, max(d.Remaining, 0), seconds(d.Reset)))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(seconds(d.RetryAfter), 1), 10))
	}
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }
