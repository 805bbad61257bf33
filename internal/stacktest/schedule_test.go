package stacktest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/api"
	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/schedule"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// schedulesOf lists the schedules the headers' key (default the stack's)
// sees.
func (s *stack) schedulesOf(headers map[string]string) []schedule.Listed {
	s.t.Helper()
	r := s.do("GET", "/api/v1/schedules", nil, headers)
	var out struct{ Schedules []schedule.Listed }
	if r.code != http.StatusOK || json.Unmarshal(r.body, &out) != nil {
		s.t.Fatalf("list schedules: %d %s", r.code, r.body)
	}
	return out.Schedules
}

// Schedules are checked when created (each refusal a JSON error with its
// code and the field at fault), seen and deleted only by their tenant, and
// after an outage run once, for their latest missed time: a normal S3
// batch that reads the input its {{date}} names and carries the
// schedule's id.
func TestSchedules(t *testing.T) {
	s, st := s3Stack(t, api.Config{}, "s3://leads/exports,s3://leads/scores")
	ok := `{"model_id": "21", "cron": "*/30 * * * *", "time_zone": "Asia/Tokyo",
		"input_url": "s3://leads/exports/{{date}}/{{time}}.csv", "output_url": "s3://leads/scores/{{date}}/{{time}}/"}`
	for name, c := range map[string]struct {
		body, ctype string
		code        int
		errCode     string
		field       string
	}{
		"bad cron":        {`{"model_id": "21", "cron": "every night", "input_url": "s3://leads/exports/a.csv", "output_url": "s3://leads/scores/"}`, "", 422, "invalid_input", "cron"},
		"seconds":         {`{"model_id": "21", "cron": "@every 1s", "input_url": "s3://leads/exports/a.csv", "output_url": "s3://leads/scores/"}`, "", 422, "invalid_input", "cron"},
		"bad zone":        {`{"model_id": "21", "cron": "0 2 * * *", "time_zone": "Mars/Base", "input_url": "s3://leads/exports/a.csv", "output_url": "s3://leads/scores/"}`, "", 422, "invalid_input", "time_zone"},
		"bad template":    {`{"model_id": "21", "cron": "0 2 * * *", "input_url": "s3://leads/exports/{{hour}}.csv", "output_url": "s3://leads/scores/"}`, "", 422, "invalid_input", "input_url"},
		"no format":       {`{"model_id": "21", "cron": "0 2 * * *", "input_url": "s3://leads/exports/a.txt", "output_url": "s3://leads/scores/"}`, "", 422, "invalid_input", "format"},
		"not allowed":     {`{"model_id": "21", "cron": "0 2 * * *", "input_url": "s3://leads/private/{{date}}.csv", "output_url": "s3://leads/scores/"}`, "", 403, "forbidden", ""},
		"unknown model":   {`{"model_id": "99", "cron": "0 2 * * *", "input_url": "s3://leads/exports/a.csv", "output_url": "s3://leads/scores/"}`, "", 404, "model_not_found", ""},
		"bad callback":    {`{"model_id": "21", "cron": "0 2 * * *", "input_url": "s3://leads/exports/a.csv", "output_url": "s3://leads/scores/", "callback_url": "ftp://x"}`, "", 422, "invalid_input", ""},
		"unknown field":   {`{"model_id": "21", "cron": "0 2 * * *", "input_urls": "s3://leads/exports/a.csv"}`, "", 400, "bad_request", ""},
		"not JSON":        {`model_id=21`, "application/x-www-form-urlencoded", 415, "unsupported_media_type", ""},
		"malformed":       {`{"model_id": `, "", 400, "bad_request", ""},
		"wrong JSON type": {`{"model_id": 21}`, "", 400, "bad_request", ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{}
			if c.ctype != "" {
				h["Content-Type"] = c.ctype
			}
			r := s.do("POST", "/api/v1/schedules", []byte(c.body), h)
			var e struct {
				Code   string
				Fields []jobs.FieldError `json:"errors"`
			}
			if r.code != c.code || json.Unmarshal(r.body, &e) != nil || e.Code != c.errCode ||
				(c.field != "" && (len(e.Fields) != 1 || e.Fields[0].Field != c.field)) {
				t.Fatalf("%d %s; want %d %s on %q", r.code, r.body, c.code, c.errCode, c.field)
			}
		})
	}
	r := s.do("POST", "/api/v1/schedules", []byte(ok), nil)
	var sch schedule.Listed
	if r.code != http.StatusCreated || json.Unmarshal(r.body, &sch) != nil || sch.ID == "" || sch.NextRun == nil ||
		sch.TimeZone != "Asia/Tokyo" || sch.NextRun.Minute()%30 != 0 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	other, _, err := apikey.Create(t.Context(), s.rdb, "globex", "unlimited")
	if err != nil {
		t.Fatal(err)
	}
	asOther := map[string]string{"X-API-Key": other}
	if got := s.schedulesOf(asOther); len(got) != 0 {
		t.Fatalf("another tenant sees %d schedules", len(got))
	}
	if r := s.do("DELETE", "/api/v1/schedules/"+sch.ID, nil, asOther); r.code != http.StatusNotFound || r.json(t)["code"] != "schedule_not_found" {
		t.Fatalf("another tenant's delete: %d %s", r.code, r.body)
	}

	// An outage: the schedule has been due for 70 minutes, so two or three
	// of its times were missed. Only the latest runs.
	now := time.Now()
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	latest := now.Truncate(30 * time.Minute) // Tokyo is whole hours off UTC
	pathOf := func(at time.Time) string { return at.In(tokyo).Format("2006-01-02/1504") }
	// The run may come after the next half hour has begun.
	for _, at := range []time.Time{latest, latest.Add(30 * time.Minute)} {
		putObject(t, st, "s3://leads/exports/"+pathOf(at)+".csv", leadsCSV(t, 20, nil))
	}
	if err := s.rdb.ZAdd(t.Context(), schedule.NextKey, redis.Z{Score: float64(now.Add(-70 * time.Minute).UnixMilli()), Member: sch.ID}).Err(); err != nil {
		t.Fatal(err)
	}
	var runs []schedule.Run
	eventually(t, 20*time.Second, func() bool {
		runs = s.schedulesOf(nil)[0].Runs
		return len(runs) > 0
	}, "the schedule never ran; logs:\n%s", s.logs)
	if next := latest.Add(30 * time.Minute); len(runs) == 2 && runs[0].ScheduledFor.Equal(next) {
		runs = runs[1:] // the next half hour's own run came meanwhile
	} else if len(runs) == 1 && runs[0].ScheduledFor.Equal(next) {
		latest = next // the catch-up ran after the next half hour began
	}
	if len(runs) != 1 || !runs[0].ScheduledFor.Equal(latest) || runs[0].BatchID == "" || runs[0].Error != nil {
		t.Fatalf("runs %+v; want one, for %s", runs, latest)
	}
	path := pathOf(latest)
	b := s.waitS3Batch(runs[0].BatchID, 30*time.Second)
	if b["status"] != jobs.BatchSucceeded || b["schedule_id"] != sch.ID || b["rows_total"] != float64(20) ||
		b["input_url"] != "s3://leads/exports/"+path+".csv" {
		t.Fatalf("the run's batch: %v", b)
	}
	if got := getObject(t, st, "s3://leads/scores/"+path+"/results.csv"); len(got) == 0 {
		t.Fatal("the run wrote no results")
	}
	if next := s.schedulesOf(nil)[0].NextRun; next == nil || !next.After(now) {
		t.Fatalf("next run %v is not after the catch-up", next)
	}
	if r := s.do("DELETE", "/api/v1/schedules/"+sch.ID, nil, nil); r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if got := s.schedulesOf(nil); len(got) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
}
