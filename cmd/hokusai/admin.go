package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/ratelimit"
	"github.com/hokusai-ai/inference-queue/internal/redisconn"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// adminCommands are the commands that work on Redis directly; each gets a
// client of REDIS_URL.
var adminCommands = map[string]func(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error{
	"keys":    runKeys,
	"models":  runModels,
	"workers": runWorkers,
	"usage":   runUsage,
	"s3":      runS3,
}

func runAdmin(ctx context.Context, name string, args []string, getenv func(string) string, stdout io.Writer) error {
	rdb, err := redisconn.Open(getenv("REDIS_URL"), getenv("REDIS_PASSWORD"))
	if err != nil {
		return err
	}
	defer rdb.Close()
	return adminCommands[name](apikey.WithActor(ctx, defaultActor(getenv)), rdb, args, stdout)
}

func runKeys(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	actor, args, err := takeActor(args)
	if err != nil {
		return err
	}
	if actor != "" {
		ctx = apikey.WithActor(ctx, actor)
	}
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
		tenant := fs.String("tenant", "", "tenant the key acts for")
		limit := fs.String("limit", "", "the key's own rate limit: N/s, N/m, N/h, N/d or unlimited (default: the API's)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *tenant == "" {
			return fmt.Errorf("keys create needs --tenant NAME")
		}
		if err := checkLimit(*limit); err != nil {
			return err
		}
		key, _, err := apikey.Create(ctx, rdb, *tenant, *limit)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, key)
		return nil
	case "revoke":
		if len(args) != 2 {
			return fmt.Errorf("keys revoke needs one KEY or key id")
		}
		rec, err := apikey.Revoke(ctx, rdb, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked key %s of tenant %s\n", rec.ID, rec.Tenant)
		return nil
	case "secret":
		return keysSecret(ctx, rdb, args[1:], stdout)
	case "limits":
		return keysLimits(ctx, rdb, args[1:], stdout)
	case "audit":
		return keysAudit(ctx, rdb, args[1:], stdout)
	case "list":
		recs, err := apikey.List(ctx, rdb)
		if err != nil {
			return err
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].CreatedAt.Before(recs[j].CreatedAt) })
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		tenants, err := apikey.TenantLimits(ctx, rdb)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tTENANT\tCREATED\tLIMIT\tBATCH ROWS\tTENANT LIMIT\tTENANT BATCH ROWS\tTENANT WEIGHT")
		for _, r := range recs {
			t := tenants[r.Tenant]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Tenant, r.CreatedAt.Format(time.RFC3339),
				orDefault(r.Limit), orDefault(r.BatchRows), orDefault(t.Requests), orDefault(t.BatchRows), orDefault(t.Weight))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown keys command %q", args[0])
}

func runModels(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "apply":
		fs := flag.NewFlagSet("models apply", flag.ContinueOnError)
		file := fs.String("f", "", "registry YAML file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *file == "" {
			return fmt.Errorf("models apply needs -f FILE")
		}
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		specs, err := registry.Parse(f)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		if err := registry.Apply(ctx, rdb, specs); err != nil {
			return err
		}
		for _, s := range specs {
			fmt.Fprintf(stdout, "applied model %s (%s) from %s to pool %s\n", s.ID, s.Name, s.Source, s.Pool)
		}
		return nil
	case "list":
		specs, err := registry.List(ctx, rdb)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSOURCE\tREVISION\tPOOL\tMAX_BATCH")
		for _, s := range specs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.ID, s.Name, s.Source, orDash(s.Revision), s.Pool, s.MaxBatchSize)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown models command %q", args[0])
}

func runWorkers(ctx context.Context, rdb redis.UniversalClient, _ []string, stdout io.Writer) error {
	ids, err := rdb.ZRange(ctx, jobs.WorkersKey, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("read workers: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tPOOL\tLANES\tSTATE\tMODELS\tREASONS\tSEEN")
	for _, id := range ids {
		b, err := rdb.Get(ctx, jobs.HeartbeatKey(id)).Bytes()
		if err != nil {
			continue // heartbeat expired: the worker is gone
		}
		var hb jobs.Heartbeat
		if json.Unmarshal(b, &hb) != nil {
			continue
		}
		models := make([]string, 0, len(hb.Models))
		for _, m := range hb.Models {
			models = append(models, m.ID+"@"+orDash(m.Revision))
		}
		lanes := make([]string, len(hb.Lanes))
		for i, l := range hb.Lanes {
			lanes[i] = string(l)
		}
		if len(lanes) == 0 {
			lanes = []string{"all"} // a worker from before heartbeats named their lanes
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s ago\n", hb.WorkerID, hb.Pool, strings.Join(lanes, ","), hb.State, orDash(strings.Join(models, ",")),
			orDash(strings.Join(hb.Reasons, ",")), time.Since(hb.SeenAt).Round(time.Millisecond))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// keysSecret prints a tenant's webhook signing secret, creating it on first use.
func keysSecret(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys secret", flag.ContinueOnError)
	name := fs.String("tenant", "", "tenant whose webhook secret to show")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("keys secret needs --tenant NAME")
	}
	s, err := tenant.WebhookSecret(ctx, rdb, *name)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, s)
	return err
}

// keysLimits sets a key's own limits (KEY or its id) or a tenant's
// (--tenant): requests, batch rows, and a tenant's weight. "default" gives
// one the API's default again.
func keysLimits(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys limits", flag.ContinueOnError)
	tenantName := fs.String("tenant", "", "set the tenant's limits, over all its keys")
	var ch apikey.Change
	fs.Func("limit", "requests: N/s, N/m, N/h, N/d, unlimited, or default", limitFlag(&ch.Requests))
	fs.Func("batch-rows", "batch rows: N/d (or /h, /m, /s), unlimited, or default", limitFlag(&ch.BatchRows))
	fs.Func("weight", "the tenant's share of the workers beside other tenants': 1 to 100, or default (1)", func(v string) error {
		if v == "default" {
			v = ""
		} else if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 100 {
			return fmt.Errorf("weight %q: want a whole number from 1 to 100, or default", v)
		}
		ch.Weight = &v
		return nil
	})
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if (*tenantName == "") == (len(pos) != 1) || (ch == apikey.Change{}) {
		return errors.New("keys limits needs KEY|ID or --tenant NAME, and --limit, --batch-rows or --weight")
	}
	var shown []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"limit", ch.Requests}, {"batch rows", ch.BatchRows}, {"weight", ch.Weight}} {
		if f.v != nil {
			shown = append(shown, f.name+" "+orDefault(*f.v))
		}
	}
	if *tenantName != "" {
		if err := apikey.SetTenantLimits(ctx, rdb, *tenantName, ch); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "tenant %s: %s\n", *tenantName, strings.Join(shown, ", "))
		return err
	}
	if ch.Weight != nil {
		return errors.New("a weight is a tenant's: give --tenant NAME")
	}
	rec, err := apikey.SetLimits(ctx, rdb, pos[0], ch)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "key %s of tenant %s: %s\n", rec.ID, rec.Tenant, strings.Join(shown, ", "))
	return err
}

// limitFlag sets *dst to a limit the API can read, "" for "default".
func limitFlag(dst **string) func(string) error {
	return func(v string) error {
		if v == "default" {
			v = ""
		}
		if err := checkLimit(v); err != nil {
			return err
		}
		*dst = &v
		return nil
	}
}

// checkLimit refuses a limit the API could not read; empty is the default.
func checkLimit(l string) error {
	if l == "" {
		return nil
	}
	_, err := ratelimit.ParseLimit(l)
	return err
}

func orDefault(limit string) string {
	if limit == "" {
		return "default"
	}
	return limit
}
