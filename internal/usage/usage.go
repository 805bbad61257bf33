package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counts are one tenant's, key's and model's counters over a day.
type Counts struct {
	// Requests are authenticated /api/v1 requests answered, whatever the
	// status (reads of usage itself aside); Errors are those answered with a
	// status of 400 or more.
	Requests, Errors int64
	// Rows are predict rows scored (sync and async); BatchRows are batch rows
	// scored and FailedRows batch rows that failed (invalid, or their chunk
	// failed every attempt), each counted once per batch.
	Rows, BatchRows, FailedRows int64
	// Compute is the time workers spent scoring: a predict's model call, a
	// batch chunk's decoding and scoring.
	Compute time.Duration
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.Rows += o.Rows
	c.BatchRows += o.BatchRows
	c.FailedRows += o.FailedRows
	c.Compute += o.Compute
}

// fields are the counters as Redis hash fields hold them; compute in whole
// microseconds so sums stay exact.
var fields = []struct {
	name string
	get  func(*Counts) *int64
}{
	{"requests", func(c *Counts) *int64 { return &c.Requests }},
	{"errors", func(c *Counts) *int64 { return &c.Errors }},
	{"rows", func(c *Counts) *int64 { return &c.Rows }},
	{"batch_rows", func(c *Counts) *int64 { return &c.BatchRows }},
	{"failed_rows", func(c *Counts) *int64 { return &c.FailedRows }},
}

const computeField = "compute_us"

// Config sets how long usage is kept and how often a Meter flushes.
type Config struct {
	// Days is how many days a day's usage is kept after it ends. Env
	// HOKUSAI_USAGE_DAYS, default 90.
	Days int
	// FlushInterval is how often a process writes what it counted; a crash
	// loses at most this much. Env HOKUSAI_USAGE_FLUSH_INTERVAL, default 1s.
	FlushInterval time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Days == 0 {
		c.Days = 90
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Second
	}
	return c
}

// Validate reports what is wrong with c, as a sentence.
func (c Config) Validate() error {
	var errs []error
	if c.Days < 1 || c.Days > 3660 {
		errs = append(errs, fmt.Errorf("usage is kept %d days; keep it from 1 to 3660", c.Days))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Minute {
		errs = append(errs, fmt.Errorf("usage flush interval %s is not between 10ms and 1m", c.FlushInterval))
	}
	return errors.Join(errs...)
}

// Redis layout: one hash per tenant and UTC day, its fields
// "KEY_ID|MODEL_ID|COUNTER"; and the set of tenants that have usage.
//
//	hokusai:usage:{tenant}:2026-12-03   hash
//	hokusai:usage:tenants               set
const (
	keyPrefix  = "hokusai:usage:"
	TenantsKey = keyPrefix + "tenants"
)

func dayKey(tenant string, day int64) string {
	return keyPrefix + "{" + tenant + "}:" + time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
}

// cell is what one set of counters is kept by: day is days since the Unix
// epoch, UTC, so that adding formats nothing.
type cell struct {
	tenant, key, model string
	day                int64
}

// Meter counts usage in memory and writes it to Redis. Its memory is one
// entry per tenant, key, model and day seen since the last flush: keys and
// models are those issued and registered, since only authenticated
// requests to known models are counted.
type Meter struct {
	rdb redis.UniversalClient
	cfg Config

	mu      sync.Mutex
	pending map[cell]*Counts
	totals  map[string]*Counts // by tenant, since the process started
}

// NewMeter returns a meter writing to rdb; cfg's zero fields take defaults.
func NewMeter(rdb redis.UniversalClient, cfg Config) *Meter {
	return &Meter{rdb: rdb, cfg: cfg.WithDefaults(), pending: map[cell]*Counts{}, totals: map[string]*Counts{}}
}

// Add counts c for tenant's key on model, today (UTC). It takes a lock and
// two map lookups, and allocates only for a cell new since the last flush.
func (m *Meter) Add(tenant, key, model string, c Counts) {
	k := cell{tenant: tenant, key: key, model: model, day: time.Now().Unix() / 86400}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked(k, c)
	t := m.totals[tenant]
	if t == nil {
		t = &Counts{}
		m.totals[tenant] = t
	}
	t.Add(c)
}

func (m *Meter) addLocked(k cell, c Counts) {
	p := m.pending[k]
	if p == nil {
		p = &Counts{}
		m.pending[k] = p
	}
	p.Add(c)
}

// Flush writes what was counted since the last flush in one transaction:
// an HINCRBY per counter, an EXPIREAT per day hash. On failure the counts
// are kept for the next flush; a flush whose answer alone was lost counts
// twice.
func (m *Meter) Flush(ctx context.Context) error {
	m.mu.Lock()
	pending := m.pending
	m.pending = map[cell]*Counts{}
	m.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	_, err := m.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		expire := map[string]time.Time{}
		for k, c := range pending {
			h := dayKey(k.tenant, k.day)
			prefix := k.key + "|" + k.model + "|"
			for _, f := range fields {
				if n := *f.get(c); n != 0 {
					p.HIncrBy(ctx, h, prefix+f.name, n)
				}
			}
			if c.Compute != 0 {
				p.HIncrBy(ctx, h, prefix+computeField, c.Compute.Microseconds())
			}
			expire[h] = time.Unix((k.day+1+int64(m.cfg.Days))*86400, 0)
			p.SAdd(ctx, TenantsKey, k.tenant)
		}
		for h, at := range expire {
			p.ExpireAt(ctx, h, at)
		}
		return nil
	})
	if err != nil {
		m.mu.Lock()
		for k, c := range pending {
			m.addLocked(k, *c)
		}
		m.mu.Unlock()
		return fmt.Errorf("write usage: %w", err)
	}
	return nil
}

// Run flushes every FlushInterval until ctx ends, then once more, so that
// a clean stop loses nothing counted before it.
func (m *Meter) Run(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(m.cfg.FlushInterval)
	defer t.Stop()
	flush := func(ctx context.Context) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := m.Flush(fctx); err != nil {
			log.Warn("usage not written; kept for the next flush", "err", err.Error())
		}
	}
	for {
		select {
		case <-ctx.Done():
			flush(context.Background())
			return
		case <-t.C:
			flush(ctx)
		}
	}
}

// Totals returns each tenant's counts since the process started.
func (m *Meter) Totals() map[string]Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Counts, len(m.totals))
	for t, c := range m.totals {
		out[t] = *c
	}
	return out
}

// parseField splits "KEY|MODEL|COUNTER": key ids and counter names have no
// "|", so a model id may.
func parseField(f string) (key, model, counter string, ok bool) {
	i, j := strings.IndexByte(f, '|'), strings.LastIndexByte(f, '|')
	if i < 0 || i == j {
		return "", "", "", false
	}
	return f[:i], f[i+1 : j], f[j+1:], true
}

// set stores counter's value v into c; unknown counters are ignored.
func (c *Counts) set(counter, v string) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return
	}
	if counter == computeField {
		c.Compute += time.Duration(n) * time.Microsecond
		return
	}
	for _, f := range fields {
		if f.name == counter {
			*f.get(c) += n
		}
	}
}
