package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	meter "github.com/hokusai-ai/inference-queue/internal/usage"
)

// defaultActor is who the audit log names for changes made by this
// command: $HOKUSAI_ACTOR, else the OS user at this host.
func defaultActor(getenv func(string) string) string {
	if a := getenv("HOKUSAI_ACTOR"); a != "" {
		return a
	}
	name := getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// takeActor removes --actor NAME (or --actor=NAME, -actor) from a keys
// command's arguments, so every keys command takes it wherever it stands.
func takeActor(args []string) (actor string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(args[i], "=")
		if name != "--actor" && name != "-actor" {
			rest = append(rest, args[i])
			continue
		}
		if !hasVal {
			if i+1 == len(args) {
				return "", nil, errors.New("--actor needs a name")
			}
			i++
			val = args[i]
		}
		actor = val
	}
	return actor, rest, nil
}

// keysAudit prints the audit log of keys and limits, oldest first.
func keysAudit(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys audit", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "only this tenant's changes")
	since := fs.String("since", "", "only changes from this UTC day on (YYYY-MM-DD; default: all kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var from time.Time
	if *since != "" {
		var err error
		if from, err = time.Parse(time.DateOnly, *since); err != nil {
			return fmt.Errorf("--since %q is not a date like 2026-12-01", *since)
		}
	}
	events, err := apikey.AuditLog(ctx, rdb, *tenant, from)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tSETTING\tTENANT\tKEY ID\tVALUE\tPREVIOUS\tACTOR")
	for _, e := range events {
		limit, prev := orDefault(e.Limit), orDefault(e.PreviousLimit)
		switch e.Action {
		case apikey.ActionRevoke:
			limit = "-"
		case apikey.ActionCreate:
			prev = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339Nano), e.Action, orDash(e.Setting), e.Tenant,
			orDash(e.KeyID), limit, prev, e.Actor)
	}
	return tw.Flush()
}

var usageColumns = []string{"day", "tenant", "key_id", "model_id", "requests", "errors", "rows", "batch_rows", "failed_rows", "compute_seconds"}

// runUsage prints usage by day, tenant, key id and model: one tenant's or
// every tenant's, as a table or CSV.
func runUsage(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "only this tenant (default: every tenant)")
	since := fs.String("since", "", "first UTC day, YYYY-MM-DD (default: 29 days before --until)")
	until := fs.String("until", "", "last UTC day, YYYY-MM-DD (default: today)")
	format := fs.String("format", "table", "table or csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "table" && *format != "csv" {
		return fmt.Errorf("--format %q: want table or csv", *format)
	}
	from, to, _, err := meter.ParseRange(*since, *until, time.Now())
	if err != nil {
		return err
	}
	tenants := []string{*tenant}
	if *tenant == "" {
		if tenants, err = meter.Tenants(ctx, rdb); err != nil {
			return err
		}
	}
	var records [][]string
	for _, t := range tenants {
		rows, err := meter.Read(ctx, rdb, t, from, to)
		if err != nil {
			return err
		}
		for _, r := range rows {
			i := strconv.FormatInt
			records = append(records, []string{r.Day, r.Tenant, r.KeyID, r.ModelID, i(r.Requests, 10), i(r.Errors, 10),
				i(r.Rows, 10), i(r.BatchRows, 10), i(r.FailedRows, 10), strconv.FormatFloat(r.ComputeSeconds, 'f', 6, 64)})
		}
	}
	if *format == "csv" {
		w := csv.NewWriter(stdout)
		_ = w.Write(usageColumns)
		_ = w.WriteAll(records) // flushes and reports the first error
		return w.Error()
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(usageColumns, "\t"))+"\t")
	for _, r := range records {
		r[3] = orDash(r[3])
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	return tw.Flush()
}
