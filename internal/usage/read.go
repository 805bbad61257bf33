package usage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// MaxDays is the longest range Read takes, in days.
const MaxDays = 366

// Row is one day's usage of one key on one model. ModelID is empty for
// requests not addressed to a model (job and batch reads).
type Row struct {
	Day            string  `json:"day"`
	Tenant         string  `json:"tenant"`
	KeyID          string  `json:"key_id"`
	ModelID        string  `json:"model_id"`
	Requests       int64   `json:"requests"`
	Errors         int64   `json:"errors"`
	Rows           int64   `json:"rows"`
	BatchRows      int64   `json:"batch_rows"`
	FailedRows     int64   `json:"failed_rows"`
	ComputeSeconds float64 `json:"compute_seconds"`
}

func newRow(day, tenant, key, model string, c Counts) Row {
	return Row{Day: day, Tenant: tenant, KeyID: key, ModelID: model, Requests: c.Requests, Errors: c.Errors,
		Rows: c.Rows, BatchRows: c.BatchRows, FailedRows: c.FailedRows, ComputeSeconds: c.Compute.Seconds()}
}

// ParseRange reads a range of UTC days given as YYYY-MM-DD, both ends
// included: until defaults to today, since to 29 days before until. It
// refuses a range that is backwards or longer than MaxDays; the error
// names the parameter.
func ParseRange(since, until string, now time.Time) (from, to time.Time, param string, err error) {
	to = now.UTC().Truncate(24 * time.Hour)
	if until != "" {
		if to, err = time.Parse(time.DateOnly, until); err != nil {
			return from, to, "until", fmt.Errorf("until %q is not a date like 2026-12-31", until)
		}
	}
	from = to.AddDate(0, 0, -29)
	if since != "" {
		if from, err = time.Parse(time.DateOnly, since); err != nil {
			return from, to, "since", fmt.Errorf("since %q is not a date like 2026-12-01", since)
		}
	}
	switch days := int(to.Sub(from).Hours()/24) + 1; {
	case days < 1:
		return from, to, "since", fmt.Errorf("since %s is after until %s", from.Format(time.DateOnly), to.Format(time.DateOnly))
	case days > MaxDays:
		return from, to, "since", fmt.Errorf("the range is %d days; at most %d can be read at once", days, MaxDays)
	}
	return from, to, "", nil
}

// Read returns tenant's usage from the day of since to the day of until
// (UTC, both included, at most MaxDays), in one round trip, by day, key
// and model. Counts not yet flushed by their process are not in it.
func Read(ctx context.Context, rdb redis.UniversalClient, tenant string, since, until time.Time) ([]Row, error) {
	first, last := since.Unix()/86400, until.Unix()/86400
	if last-first >= MaxDays {
		return nil, fmt.Errorf("usage range over %d days", MaxDays)
	}
	var days []*redis.MapStringStringCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for d := first; d <= last; d++ {
			days = append(days, p.HGetAll(ctx, dayKey(tenant, d)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	var rows []Row
	for i, cmd := range days {
		day := time.Unix((first+int64(i))*86400, 0).UTC().Format(time.DateOnly)
		type km struct{ key, model string }
		cells := map[km]*Counts{}
		for f, v := range cmd.Val() {
			key, model, counter, ok := parseField(f)
			if !ok {
				continue
			}
			c := cells[km{key, model}]
			if c == nil {
				c = &Counts{}
				cells[km{key, model}] = c
			}
			c.set(counter, v)
		}
		for k, c := range cells {
			rows = append(rows, newRow(day, tenant, k.key, k.model, *c))
		}
	}
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.KeyID, b.KeyID), cmp.Compare(a.ModelID, b.ModelID))
	})
	return rows, nil
}

// Tenants returns every tenant with usage recorded (some of it possibly
// expired since).
func Tenants(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	ts, err := rdb.SMembers(ctx, TenantsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read usage tenants: %w", err)
	}
	slices.Sort(ts)
	return ts, nil
}

// Series is one Prometheus counter of a Meter's totals, by tenant.
type Series struct {
	Name, Help string
	Value      func(Counts) float64
}

// Collector exports the meter's totals since the process started as
// counters labelled by tenant name only (never a key).
func (m *Meter) Collector(series ...Series) prometheus.Collector {
	c := collector{m: m}
	for _, s := range series {
		c.series = append(c.series, s)
		c.descs = append(c.descs, prometheus.NewDesc(s.Name, s.Help, []string{"tenant"}, nil))
	}
	return c
}

type collector struct {
	m      *Meter
	series []Series
	descs  []*prometheus.Desc
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for tenant, counts := range c.m.Totals() {
		for i, s := range c.series {
			ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.CounterValue, s.Value(counts), tenant)
		}
	}
}
