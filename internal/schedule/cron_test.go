package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustTiming(t *testing.T, spec, zone string) Timing {
	t.Helper()
	tm, err := ParseTiming(spec, zone)
	if err != nil {
		t.Fatalf("ParseTiming(%q, %q): %v", spec, zone, err)
	}
	return tm
}

func TestParseTimingRefuses(t *testing.T) {
	for name, c := range map[string]struct{ spec, zone, want string }{
		"empty":          {"", "", "empty"},
		"too long":       {strings.Repeat("1 ", 60), "", "over 100 bytes"},
		"seconds":        {"@every 1s", "", "@every"},
		"zone in spec":   {"CRON_TZ=UTC 0 2 * * *", "", "time_zone"},
		"bare TZ prefix": {"TZ=", "", "time_zone"},
		"six fields":     {"0 0 2 * * *", "", "not valid"},
		"out of range":   {"61 * * * *", "", "not valid"},
		"never fires":    {"0 0 30 2 *", "", "never fires"},
		"unknown zone":   {"0 2 * * *", "Mars/Olympus", "IANA"},
		"local zone":     {"0 2 * * *", "Local", "IANA"},
		"path zone":      {"0 2 * * *", "../../etc/passwd", "IANA"},
		"long zone":      {"0 2 * * *", strings.Repeat("A", 65), "IANA"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTiming(c.spec, c.zone)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// Scheduled times are read in the schedule's zone, across a DST change:
// 02:30 every day in Berlin is 00:30 UTC in summer, 01:30 in winter.
func TestNextInZone(t *testing.T) {
	tm := mustTiming(t, "30 2 * * *", "Europe/Berlin")
	for _, c := range []struct{ after, want string }{
		{"2026-07-01T12:00:00Z", "2026-07-02T00:30:00Z"},
		{"2026-12-01T12:00:00Z", "2026-12-02T01:30:00Z"},
	} {
		after, _ := time.Parse(time.RFC3339, c.after)
		if got := tm.Next(after).UTC().Format(time.RFC3339); got != c.want {
			t.Errorf("Next(%s) = %s, want %s", c.after, got, c.want)
		}
	}
}

// Latest is the missed-run policy: the latest scheduled time in
// [from, now], looking back at most CatchUp.
func TestLatest(t *testing.T) {
	tm := mustTiming(t, "*/15 * * * *", "UTC")
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	for name, c := range map[string]struct {
		from, now, want string // want "" is none
	}{
		"on time":                {"2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"},
		"a little late":          {"2026-12-03T10:00:00Z", "2026-12-03T10:00:07Z", "2026-12-03T10:00:00Z"},
		"not yet":                {"2026-12-03T10:15:00Z", "2026-12-03T10:14:59Z", ""},
		"outage: the latest":     {"2026-12-03T10:00:00Z", "2026-12-03T13:20:00Z", "2026-12-03T13:15:00Z"},
		"outage past catch-up":   {"2026-11-01T10:00:00Z", "2026-12-03T13:20:00Z", "2026-12-03T13:15:00Z"},
		"catch-up window bounds": {"2026-12-01T10:00:00Z", "2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := tm.Latest(at(c.from), at(c.now))
			if c.want == "" {
				if ok {
					t.Fatalf("Latest = %s, want none", got)
				}
				return
			}
			if !ok || !got.Equal(at(c.want)) {
				t.Fatalf("Latest = %s (%v), want %s", got, ok, c.want)
			}
		})
	}
	// A weekly run (Wednesdays) missed by more than CatchUp is skipped.
	weekly := mustTiming(t, "0 2 * * 3", "UTC")
	if got, ok := weekly.Latest(at("2026-11-25T02:00:00Z"), at("2026-11-30T00:00:00Z")); ok {
		t.Fatalf("a run missed by over %s ran: %s", CatchUp, got)
	}
}

func TestExpand(t *testing.T) {
	tm := mustTiming(t, "0 2 * * *", "America/New_York")
	at, _ := time.Parse(time.RFC3339, "2026-12-03T03:05:00Z") // 22:05 the day before in New York
	got := Expand("s3://leads/{{date}}/export-{{time}}.csv", at, tm.Zone())
	if want := "s3://leads/2026-12-02/export-2205.csv"; got != want {
		t.Fatalf("Expand = %q, want %q", got, want)
	}
	for tmpl, ok := range map[string]bool{"s3://b/{{date}}/{{time}}.csv": true, "s3://b/x.csv": true,
		"s3://b/{{hour}}.csv": false, "s3://b/{{date}.csv": false, "s3://b/}.csv": false} {
		if err := CheckTemplate(tmpl); (err == nil) != ok {
			t.Errorf("CheckTemplate(%q) = %v", tmpl, err)
		}
	}
}

// The parser takes tenants' bytes: it refuses or accepts, never panics.
func FuzzParseTiming(f *testing.F) {
	for _, s := range []string{"0 2 * * *", "@daily", "TZ=", "CRON_TZ=Europe/Berlin 0 2 * * *", "*/0 * * * *", "0-99/3 * * * *"} {
		f.Add(s, "UTC")
	}
	f.Fuzz(func(t *testing.T, spec, zone string) {
		if tm, err := ParseTiming(spec, zone); err == nil && tm.Next(time.Now()).IsZero() {
			t.Fatalf("%q in %q accepted but never fires", spec, zone)
		}
	})
}
