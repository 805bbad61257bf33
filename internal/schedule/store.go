package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// MaxPerTenant bounds a tenant's schedules.
const MaxPerTenant = 100

// KeepRuns is how many of a schedule's latest runs are kept, for runsTTL
// after the latest.
const (
	KeepRuns = 20
	runsTTL  = 31 * 24 * time.Hour
)

// Redis keys.
const (
	// NextKey orders every schedule by its next scheduled time (unix ms):
	// the API processes look there for due ones, and claim a run by
	// moving its score on.
	NextKey   = "hokusai:schedules:next"
	keyPrefix = "hokusai:schedule:"
)

func defKey(id string) string        { return keyPrefix + id }
func runsKey(id string) string       { return keyPrefix + id + ":runs" }
func TenantKey(tenant string) string { return "hokusai:schedules:tenant:" + tenant }

// ErrTooMany refuses a tenant's schedule past MaxPerTenant.
var ErrTooMany = fmt.Errorf("a tenant may have at most %d schedules; delete one first", MaxPerTenant)

// Schedule is a recurring S3 batch as stored.
type Schedule struct {
	ID          string    `json:"schedule_id"`
	Tenant      string    `json:"-"`
	KeyID       string    `json:"key_id"` // the key that created it, charged for its runs
	ModelID     string    `json:"model_id"`
	Cron        string    `json:"cron"`
	TimeZone    string    `json:"time_zone"`
	InputURL    string    `json:"input_url"`  // may hold DateVar, TimeVar
	OutputURL   string    `json:"output_url"` // likewise
	Format      string    `json:"format,omitempty"`
	CallbackURL string    `json:"callback_url,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// stored is Schedule with the tenant, which the API never shows.
type stored struct {
	Schedule
	Tenant string `json:"tenant"`
}

// Run is one firing of a schedule: the batch it started, or why none.
type Run struct {
	ScheduledFor time.Time        `json:"scheduled_for"`
	FiredAt      time.Time        `json:"fired_at"`
	BatchID      string           `json:"batch_id,omitempty"`
	Error        *jobs.BatchError `json:"error,omitempty"`
}

// Create stores sch, first due at next, unless its tenant has MaxPerTenant
// already (concurrent creates may pass the bound by their number).
func Create(ctx context.Context, rdb redis.UniversalClient, sch Schedule, next time.Time) error {
	n, err := rdb.SCard(ctx, TenantKey(sch.Tenant)).Result()
	if err != nil {
		return err
	}
	if n >= MaxPerTenant {
		return ErrTooMany
	}
	b, _ := json.Marshal(stored{sch, sch.Tenant})
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, defKey(sch.ID), b, 0)
		p.SAdd(ctx, TenantKey(sch.Tenant), sch.ID)
		p.ZAdd(ctx, NextKey, redis.Z{Score: float64(next.UnixMilli()), Member: sch.ID})
		return nil
	})
	return err
}

// Get reads schedule id, or reports it gone.
func Get(ctx context.Context, rdb redis.UniversalClient, id string) (Schedule, bool, error) {
	b, err := rdb.Get(ctx, defKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Schedule{}, false, nil
	}
	if err != nil {
		return Schedule{}, false, err
	}
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		return Schedule{}, false, fmt.Errorf("schedule %s is not valid JSON: %w", id, err)
	}
	st.Schedule.Tenant = st.Tenant
	return st.Schedule, true, nil
}

// Listed is a schedule with its next time and latest runs, newest first.
type Listed struct {
	Schedule
	NextRun *time.Time `json:"next_run"`
	Runs    []Run      `json:"runs"`
}

// List reads tenant's schedules.
func List(ctx context.Context, rdb redis.UniversalClient, tenant string) ([]Listed, error) {
	ids, err := rdb.SMembers(ctx, TenantKey(tenant)).Result()
	if err != nil {
		return nil, err
	}
	out := []Listed{}
	for _, id := range ids {
		sch, ok, err := Get(ctx, rdb, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		l := Listed{Schedule: sch, Runs: []Run{}}
		if ms, err := rdb.ZScore(ctx, NextKey, id).Result(); err == nil {
			t := time.UnixMilli(int64(ms)).UTC()
			l.NextRun = &t
		}
		raw, err := rdb.LRange(ctx, runsKey(id), 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for _, r := range raw {
			var run Run
			if json.Unmarshal([]byte(r), &run) == nil {
				l.Runs = append(l.Runs, run)
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// Delete removes tenant's schedule id, reporting whether it was theirs.
// A run claimed just before still starts its batch.
func Delete(ctx context.Context, rdb redis.UniversalClient, tenant, id string) (bool, error) {
	n, err := rdb.SRem(ctx, TenantKey(tenant), id).Result()
	if err != nil || n == 0 {
		return false, err
	}
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, NextKey, id)
		p.Unlink(ctx, defKey(id), runsKey(id))
		return nil
	})
	return true, err
}

// Firing is a scheduled time of a schedule that a caller of ClaimDue won:
// At is the time to run, or zero when the times missed since Since are
// all skipped (older than CatchUp).
type Firing struct {
	Schedule
	Timing    Timing
	At, Since time.Time
}

// ClaimDue claims up to limit schedules whose next time has come by now,
// and returns those this call won. A schedule due since an outage runs
// once, for its latest time missed (see Timing.Latest); many callers
// (every API process) may look at once, and each scheduled time is won by
// one. errs are the schedules that could not be read or claimed.
func ClaimDue(ctx context.Context, rdb redis.UniversalClient, now time.Time, limit int64) (won []Firing, errs error) {
	due, err := rdb.ZRangeByScoreWithScores(ctx, NextKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: limit}).Result()
	if err != nil {
		return nil, err
	}
	for _, z := range due {
		id, _ := z.Member.(string)
		f, ok, err := claim(ctx, rdb, id, z.Score, now)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("schedule %s: %w", id, err))
		} else if ok {
			won = append(won, f)
		}
	}
	return won, errs
}

// claim moves schedule id's next time on from was (unix ms), past now,
// and reports whether this call did.
func claim(ctx context.Context, rdb redis.UniversalClient, id string, was float64, now time.Time) (Firing, bool, error) {
	sch, ok, err := Get(ctx, rdb, id)
	if err != nil {
		return Firing{}, false, err
	}
	f := Firing{Schedule: sch, Since: time.UnixMilli(int64(was)).UTC()}
	if ok {
		f.Timing, err = ParseTiming(sch.Cron, sch.TimeZone)
	}
	next := time.Time{}
	if ok && err == nil {
		next = f.Timing.Next(now)
	}
	if next.IsZero() { // deleted meanwhile, unreadable, or never again
		return f, false, rdb.ZRem(ctx, NextKey, id).Err()
	}
	f.At, _ = f.Timing.Latest(f.Since, now)
	n, err := claimScript.Run(ctx, rdb, []string{NextKey}, strconv.FormatFloat(was, 'f', -1, 64), next.UnixMilli(), id).Int()
	return f, n == 1, err
}

// claimScript moves a schedule's next time from ARGV[1] to ARGV[2] if it
// is still ARGV[1]: of the processes that saw it due, one wins.
var claimScript = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not cur or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1`)

// Record adds run to schedule id's latest runs.
func Record(ctx context.Context, rdb redis.UniversalClient, id string, run Run) error {
	b, _ := json.Marshal(run)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, runsKey(id), b)
		p.LTrim(ctx, runsKey(id), 0, KeepRuns-1)
		p.Expire(ctx, runsKey(id), runsTTL) // a run recorded after a delete does not stay
		return nil
	})
	return err
}
