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

// Decision is the outcome of Gatherer.Take.
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

// take is GCRA over every bucket at once, for one request after another:
// each bucket's key holds its theoretical arrival time (TAT, ms). A request
// of cost c is allowed when every bucket has room, and only then is every
// bucket charged, so a refusal costs no bucket anything. KEYS are the
// buckets; ARGV[1] is the number of requests n, then per request its time
// (ms) and cost, then per bucket its emission interval (ms per unit) and
// capacity (units). It returns, per request in order, for the bucket with
// least room, {allowed, index, remaining, reset ms, retry-after ms}.
var take = redis.NewScript(`
local n, nb = tonumber(ARGV[1]), #KEYS
local t, cap, tat = {}, {}, {}
for i = 1, nb do
  t[i], cap[i] = tonumber(ARGV[2*n + 2*i]), tonumber(ARGV[2*n + 2*i + 1])
  tat[i] = tonumber(redis.call('GET', KEYS[i]) or 0)
end
local out, now, charged = {}, 0, false
for r = 1, n do
  now = tonumber(ARGV[2*r])
  local cost = tonumber(ARGV[2*r + 1])
  local new, worst, worstRoom, allowed = {}, 1, math.huge, true
  for i = 1, nb do
    new[i] = math.max(tat[i], now) + cost * t[i]
    local room = (cap[i] * t[i] - (new[i] - now)) / t[i]
    if room < 0 then allowed = false end
    if room < worstRoom then worst, worstRoom = i, room end
  end
  local w = worst
  if allowed then
    tat, charged = new, true
    for _, v in ipairs({1, w, math.floor(worstRoom), math.ceil(new[w] - now), 0}) do out[#out + 1] = v end
  else
    for _, v in ipairs({0, w, 0, math.ceil(math.max(tat[w], now) - now), math.ceil(new[w] - cap[w] * t[w] - now)}) do out[#out + 1] = v end
  end
end
if charged then
  for i = 1, nb do
    redis.call('SET', KEYS[i], tostring(tat[i]), 'PX', math.max(1, math.ceil(tat[i] - now)))
  end
end
return out`)

// request is one Take waiting for its decision.
type request struct {
	cost int64
	now  time.Time
	done chan result // buffered: the sender never waits
}

type result struct {
	d   Decision
	err error
}

// takeAll runs the script once for reqs, in order, against limited.
func takeAll(ctx context.Context, rdb redis.UniversalClient, limited []Bucket, reqs []*request) ([]Decision, error) {
	keys := make([]string, len(limited))
	args := make([]any, 0, 1+2*len(reqs)+2*len(limited))
	args = append(args, len(reqs))
	for _, r := range reqs {
		args = append(args, r.now.UnixMilli(), r.cost)
	}
	for i, b := range limited {
		keys[i] = b.Key
		args = append(args, float64(b.Limit.Per.Milliseconds())/float64(b.Limit.N), b.Limit.N)
	}
	res, err := take.Run(ctx, rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != 5*len(reqs) {
		return nil, errors.New("rate limit script: unexpected answer")
	}
	ds := make([]Decision, len(reqs))
	for i := range ds {
		r := res[5*i : 5*i+5]
		if r[1] < 1 || int(r[1]) > len(limited) {
			return nil, errors.New("rate limit script: unexpected answer")
		}
		ds[i] = Decision{Allowed: r[0] == 1, Binding: limited[r[1]-1], Remaining: r[2],
			Reset: time.Duration(r[3]) * time.Millisecond, RetryAfter: time.Duration(r[4]) * time.Millisecond,
			Policies: limited}
	}
	return ds, nil
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

// Refusal is the decision Gatherer.Take would give again, wait before bucket b
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
