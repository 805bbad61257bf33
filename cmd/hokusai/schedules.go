package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

const schedulesUsage = `usage: hokusai schedules COMMAND (talks to HOKUSAI_API_URL with HOKUSAI_API_KEY)
  create --model ID --cron SPEC [--tz ZONE] --input s3://BUCKET/KEY --output s3://BUCKET/PREFIX/ [--format csv|jsonl] [--callback URL]
         an S3 batch on a cron spec (5 fields, or @daily...) in an IANA zone (default UTC);
         {{date}} in --input or --output is the run's date there (YYYY-MM-DD), {{time}} its time (HHMM)
  list                 the tenant's schedules, next run and latest run
  delete ID            delete a schedule (its batches go on)`

// scheduleView is the part of a schedule the CLI shows.
type scheduleView struct {
	ID       string     `json:"schedule_id"`
	ModelID  string     `json:"model_id"`
	Cron     string     `json:"cron"`
	TimeZone string     `json:"time_zone"`
	InputURL string     `json:"input_url"`
	NextRun  *time.Time `json:"next_run"`
	Runs     []struct {
		ScheduledFor time.Time `json:"scheduled_for"`
		BatchID      string    `json:"batch_id"`
		Error        *struct{ Code, Detail string }
	} `json:"runs"`
}

func runSchedules(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c, err := apiCommand("schedules", schedulesUsage, args, getenv, stderr)
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		return schedulesCreate(ctx, c, fs, args[1:], stdout, stderr)
	case "list":
		if _, err := parseMixed(fs, args[1:]); err != nil {
			return err
		}
		var list struct{ Schedules []scheduleView }
		if err := c.getJSON(ctx, "/api/v1/schedules", &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMODEL\tCRON\tZONE\tNEXT RUN (UTC)\tLAST RUN\tINPUT")
		for _, s := range list.Schedules {
			next, last := "-", "-"
			if s.NextRun != nil {
				next = s.NextRun.UTC().Format(time.DateTime)
			}
			if len(s.Runs) > 0 {
				r := s.Runs[0]
				last = r.ScheduledFor.UTC().Format(time.DateTime) + " batch " + r.BatchID
				if r.Error != nil {
					last = r.ScheduledFor.UTC().Format(time.DateTime) + " refused: " + r.Error.Code
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.ModelID, s.Cron, s.TimeZone, next, last, s.InputURL)
		}
		return tw.Flush()
	case "delete":
		pos, err := parseMixed(fs, args[1:])
		if err != nil || len(pos) != 1 {
			return errors.New("schedules delete needs one schedule id")
		}
		resp, err := c.do(ctx, "DELETE", "/api/v1/schedules/"+url.PathEscape(pos[0]), nil, nil, http.StatusNoContent)
		if err != nil {
			return err
		}
		resp.Body.Close()
		fmt.Fprintf(stderr, "deleted schedule %s\n", pos[0])
		return nil
	}
	return fmt.Errorf("unknown schedules command %q\n%s", args[0], schedulesUsage)
}

func schedulesCreate(ctx context.Context, c *apiClient, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	req := map[string]*string{}
	for _, f := range []struct{ flag, field, usage string }{
		{"model", "model_id", "model id to score with"},
		{"cron", "cron", `when to run: 5 cron fields ("0 2 * * *") or @hourly, @daily, @weekly, @monthly`},
		{"tz", "time_zone", "IANA time zone the cron spec and {{date}} are read in (default UTC)"},
		{"input", "input_url", "s3://bucket/key of each run's input; may hold {{date}} and {{time}}"},
		{"output", "output_url", "s3://bucket/prefix/ of each run's output; may hold {{date}} and {{time}}"},
		{"format", "format", "csv or jsonl (default: from the input's name)"},
		{"callback", "callback_url", "URL to POST each run's signed completion summary to"},
	} {
		req[f.field] = fs.String(f.flag, "", f.usage)
	}
	if pos, err := parseMixed(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("schedules create takes flags only, not %q", pos[0])
	}
	body := map[string]string{}
	for k, v := range req {
		if *v != "" {
			body[k] = *v
		}
	}
	b, _ := json.Marshal(body)
	resp, err := c.do(ctx, "POST", "/api/v1/schedules", bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}}, http.StatusCreated)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var s scheduleView
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	fmt.Fprintln(stdout, s.ID)
	if s.NextRun != nil {
		fmt.Fprintf(stderr, "schedule %s: first run %s UTC\n", s.ID, s.NextRun.UTC().Format(time.DateTime))
	}
	return nil
}
