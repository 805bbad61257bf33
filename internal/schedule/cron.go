package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones resolve in images without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
)

// Bounds of a schedule's fields.
const (
	MaxCronBytes     = 100
	MaxTimeZoneBytes = 64
)

// CatchUp is how far back a missed scheduled time still runs: after an
// outage, the latest time missed within CatchUp runs once, late; earlier
// ones, and any older than CatchUp, are skipped.
const CatchUp = 24 * time.Hour

// ErrTimeZone is wrapped by ParseTiming's refusal of a time zone.
var ErrTimeZone = errors.New("not an IANA time zone name such as Europe/Berlin")

// Timing is when a schedule runs: its cron spec read in its zone.
type Timing struct {
	spec cron.Schedule
	loc  *time.Location
}

// ParseTiming reads a five-field cron spec (minute hour day-of-month month
// day-of-week) or a descriptor (@hourly, @daily, @midnight, @weekly,
// @monthly, @yearly) in an IANA time zone ("" is UTC).
func ParseTiming(spec, zone string) (Timing, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return Timing{}, errors.New("the cron spec is empty; say when to run, e.g. \"0 2 * * *\" for 02:00 every day")
	case len(spec) > MaxCronBytes:
		return Timing{}, fmt.Errorf("the cron spec is over %d bytes", MaxCronBytes)
	case strings.Contains(spec, "TZ="):
		return Timing{}, errors.New("give the time zone as time_zone, not in the cron spec")
	case strings.HasPrefix(spec, "@every"):
		return Timing{}, errors.New("@every is not supported; use a five-field cron spec")
	}
	if zone == "" {
		zone = "UTC"
	}
	var loc *time.Location
	var err error
	if len(zone) <= MaxTimeZoneBytes && zone != "Local" && !strings.ContainsAny(zone, " \t\n") {
		loc, err = time.LoadLocation(zone)
	}
	if loc == nil || err != nil {
		return Timing{}, fmt.Errorf("time zone %q is %w", clip(zone), ErrTimeZone)
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return Timing{}, fmt.Errorf("the cron spec %q is not valid: %s", clip(spec), err)
	}
	t := Timing{spec: s, loc: loc}
	if t.Next(time.Now()).IsZero() {
		return Timing{}, fmt.Errorf("the cron spec %q never fires", clip(spec))
	}
	return t, nil
}

// Next is the first scheduled time after t (zero if none in five years).
func (t Timing) Next(after time.Time) time.Time { return t.spec.Next(after.In(t.loc)) }

// Latest is the latest scheduled time in [from, now], if there is one,
// looking back at most CatchUp from now.
func (t Timing) Latest(from, now time.Time) (time.Time, bool) {
	if oldest := now.Add(-CatchUp); from.Before(oldest) {
		from = oldest
	}
	at := t.Next(from.Add(-time.Second))
	if at.IsZero() || at.After(now) {
		return time.Time{}, false
	}
	for {
		n := t.Next(at)
		if n.IsZero() || n.After(now) {
			return at, true
		}
		at = n
	}
}

// Zone is the schedule's time zone.
func (t Timing) Zone() *time.Location { return t.loc }

// Placeholders of a location template, expanded with a run's scheduled
// time in the schedule's zone.
const (
	DateVar = "{{date}}" // YYYY-MM-DD
	TimeVar = "{{time}}" // HHMM, 24-hour
)

// CheckTemplate refuses braces other than the placeholders.
func CheckTemplate(tmpl string) error {
	rest := strings.NewReplacer(DateVar, "", TimeVar, "").Replace(tmpl)
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%q has braces other than %s and %s", clip(tmpl), DateVar, TimeVar)
	}
	return nil
}

// Expand fills a template's placeholders with at, a scheduled time, read
// in zone.
func Expand(tmpl string, at time.Time, zone *time.Location) string {
	at = at.In(zone)
	return strings.NewReplacer(DateVar, at.Format(time.DateOnly), TimeVar, at.Format("1504")).Replace(tmpl)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
