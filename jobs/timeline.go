package jobs

import "time"

// Timeline is a decision timeline read from text, relative to a reference time.
type Timeline struct {
	// Months is how many months from the reference time the decision is
	// expected: >= 0, finite. Meaningless when Missing.
	Months float64
	// Missing: the text says there is no timeline ("Not specified", "TBD", "", ...).
	Missing bool
	// Past: the text names a period or date wholly before the reference
	// time; Months is 0 (taken as immediate). Callers warn about it.
	Past bool
	// Far: more than 10 years ahead (likely a typo such as 2205); Months is
	// kept as computed. Callers warn about it.
	Far bool
}

const (
	// maxTimelineLen is the longest text ParseTimeline reads, in bytes.
	// Longer text is refused before any parsing, so hostile input costs
	// nothing.
	maxTimelineLen = 64
	// daysPerMonth is the mean Gregorian month, 365.25/12 days.
	daysPerMonth = 30.436875
	// secondsPerMonth is daysPerMonth in seconds, a whole number.
	secondsPerMonth = daysPerMonth * 86400
	// maxDurationMonths bounds "N months" and its kin: anything longer is
	// not a timeline anyone means.
	maxDurationMonths = 1200
	// farMonths is where a timeline becomes suspicious (10 years).
	farMonths = 120
	// moreThan is what "N+" adds to N.
	moreThan = 1e-9
	// maxTokens is more than any known form has ("q2, '25" has five).
	maxTokens = 8
)

// ParseTimeline reads text relative to asOf. ok is false when the text is not a
// form it knows (callers then treat the value as unknown).
//
// Matching ignores ASCII case and surrounding or repeated whitespace (a
// no-break space counts as a space); an en or em dash reads as "-" and a
// curly apostrophe as "'". Text longer than 64 bytes is never recognised.
// Months between two instants are the days between them divided by
// 30.436875 (365.25/12). Calendar math is in UTC, whatever asOf's zone.
//
// Periods stand for their midpoint: Months is the time from asOf to the
// midpoint, or 0 once the midpoint has passed. A period that ended at or
// before asOf is Past. Years have four digits, 1900 to 9999; a two-digit year
// yy is 20yy.
//   - Quarters Q1-Q4 and half-years H1, H2, the year after or before them:
//     "Q2 2025", "2025-Q2", "2025 Q2", "2025Q2", "Q2/2025", "Q2-2025",
//     "Q2, 2025", "Q2 '25", "Q2'25", "Q2 25", "H2 2026". Between the two
//     may stand "-", "/", "," or nothing; a two-digit year comes after.
//   - Months, named in full or abbreviated ("sept" too), then the year:
//     "June 2025", "Jun-2025", "jun '25". A two-digit year needs its
//     apostrophe, because "June 25" reads as a day. ISO year-months:
//     "2025-06".
//   - A year alone: "2026".
//
// ISO dates ("2025-06-30") and RFC 3339 times ("2025-06-30T12:00:00Z", with
// fractional seconds, an offset, or no zone meaning UTC) stand for their
// instant, a date for its midnight in UTC. One more than a day before asOf is
// Past, a day of grace because a partner's day may not be UTC's; otherwise
// Months is the time to it, or 0.
//
// Durations are a number, decimals allowed, and a unit, singular or plural:
// months (month, mo, mos, mth, mths), weeks (week, wk, wks), days (day) or
// years (year, yr, yrs). Weeks and days convert at 30.436875 days a month,
// years at 12 months; a number above 1200 months is refused.
//   - "3 months" is 3; "1-3 months", "1 - 3 months" and "1 to 3 months" the
//     middle of the range, 2.
//   - "within", "less than", "under" or "<" N months: N/2.
//   - "N+ months", "more than", "over" or ">" N months: N + 1e-9, strictly
//     more than N, so that a bucket test "<= 12" puts "12+ months" above 12.
//
// Words: "immediate", "immediately", "asap", "now", "urgent", "this month"
// and "right away" are 0; "next month" is 1; "this quarter" is the time to
// the current quarter's midpoint (or 0), "next quarter" to the next one's;
// "this year", "end of year" and "eoy" are half the time to the year's end;
// "next year" is next year's midpoint.
//
// "", whitespace, "not specified", "unspecified", "unknown", "n/a", "na",
// "none", "tbd" and "-" are Missing. Any timeline more than 120 months ahead
// is Far.
func ParseTimeline(text string, asOf time.Time) (t Timeline, ok bool) {
	if len(text) > maxTimelineLen {
		return Timeline{}, false
	}
	var buf [maxTimelineLen]byte
	s := normalize(text, &buf)
	switch string(s) {
	case "", "not specified", "unspecified", "unknown", "n/a", "na", "none", "tbd", "-":
		return Timeline{Missing: true}, true
	}
	r := newReference(asOf)
	switch string(s) {
	case "immediate", "immediately", "asap", "now", "urgent", "this month", "right away":
		return Timeline{}, true
	case "next month":
		return Timeline{Months: 1}, true
	case "this quarter", "next quarter":
		start := time.Date(r.year, (r.month-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
		if string(s) == "next quarter" {
			start = start.AddDate(0, 3, 0)
		}
		return r.period(start, start.AddDate(0, 3, 0)), true
	case "this year", "end of year", "eoy":
		end := time.Date(r.year+1, time.January, 1, 0, 0, 0, 0, time.UTC)
		return ahead(r.seconds(end.Unix(), 0) / secondsPerMonth / 2), true
	case "next year":
		return r.wholeYear(r.year + 1), true
	}
	if isISODate(s) {
		return r.date(s)
	}
	var tk [maxTokens]token
	n, ok := tokenize(s, &tk)
	if !ok {
		return Timeline{}, false
	}
	return r.tokens(tk[:n])
}

// normalize lower-cases ASCII letters, turns dashes and curly apostrophes
// into their ASCII forms, and collapses whitespace into single spaces with
// none at either end. The result is never longer than text, so buf holds it.
func normalize(text string, buf *[maxTimelineLen]byte) []byte {
	n := 0
	space := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			space = true
			continue
		case c == 0xc2 && i+1 < len(text) && text[i+1] == 0xa0: // U+00A0 no-break space
			i++
			space = true
			continue
		case c == 0xe2 && i+2 < len(text) && text[i+1] == 0x80:
			switch text[i+2] {
			case 0x93, 0x94: // U+2013 en dash, U+2014 em dash
				c = '-'
				i += 2
			case 0x98, 0x99: // U+2018, U+2019 curly apostrophes
				c = '\''
				i += 2
			}
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if space && n > 0 {
			buf[n] = ' '
			n++
		}
		space = false
		buf[n] = c
		n++
	}
	return buf[:n]
}

// reference is asOf in UTC, split the ways the rules need it.
type reference struct {
	sec, nsec int64
	year      int
	month     time.Month
}

func newReference(asOf time.Time) reference {
	u := asOf.UTC()
	return reference{sec: u.Unix(), nsec: int64(u.Nanosecond()), year: u.Year(), month: u.Month()}
}

// seconds is the signed time from the reference to an instant. It subtracts
// in floating point because asOf comes from outside: an int64 difference
// could overflow, and time.Time.Sub saturates at 292 years.
func (r reference) seconds(sec, nsec int64) float64 {
	return float64(sec) - float64(r.sec) + float64(nsec-r.nsec)/1e9
}

// ahead is a timeline months from the reference; a negative months (a time
// already reached) is now.
func ahead(months float64) Timeline {
	months = max(0, months)
	return Timeline{Months: months, Far: months > farMonths}
}

// period reads the period [start, end), whose bounds are UTC midnights.
func (r reference) period(start, end time.Time) Timeline {
	s, e := start.Unix(), end.Unix()
	// asOf is at least r.sec, so e <= r.sec means the period ended by asOf.
	if e <= r.sec {
		return Timeline{Past: true}
	}
	// Midnights are whole days apart, so the midpoint is a whole second.
	return ahead(r.seconds((s+e)/2, 0) / secondsPerMonth)
}

func (r reference) quarter(year, q int) Timeline {
	start := time.Date(year, time.Month(3*q-2), 1, 0, 0, 0, 0, time.UTC)
	return r.period(start, start.AddDate(0, 3, 0))
}

func (r reference) half(year, h int) Timeline {
	start := time.Date(year, time.Month(6*h-5), 1, 0, 0, 0, 0, time.UTC)
	return r.period(start, start.AddDate(0, 6, 0))
}

func (r reference) calendarMonth(year int, m time.Month) Timeline {
	start := time.Date(year, m, 1, 0, 0, 0, 0, time.UTC)
	return r.period(start, start.AddDate(0, 1, 0))
}

func (r reference) wholeYear(year int) Timeline {
	start := time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC)
	return r.period(start, start.AddDate(1, 0, 0))
}

// isISODate reports whether s starts like 2025-06-30.
func isISODate(s []byte) bool {
	return len(s) >= 10 && s[4] == '-' && s[7] == '-' &&
		isDigits(s[0:4]) && isDigits(s[5:7]) && isDigits(s[8:10])
}

// date reads an ISO date or an RFC 3339 time. The "T" may be a space, as RFC
// 3339 allows; no zone means UTC, the zone all calendar math here uses.
func (r reference) date(s []byte) (Timeline, bool) {
	year, month, day := atoi(s[0:4]), atoi(s[5:7]), atoi(s[8:10])
	if !validYear(year) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) {
		return Timeline{}, false
	}
	var hour, minute, second, nsec, offset int
	if rest := s[10:]; len(rest) > 0 {
		// "t12:00:00" at least.
		if len(rest) < 9 || (rest[0] != 't' && rest[0] != ' ') || rest[3] != ':' || rest[6] != ':' ||
			!isDigits(rest[1:3]) || !isDigits(rest[4:6]) || !isDigits(rest[7:9]) {
			return Timeline{}, false
		}
		hour, minute, second = atoi(rest[1:3]), atoi(rest[4:6]), atoi(rest[7:9])
		if hour > 23 || minute > 59 || second > 59 {
			return Timeline{}, false
		}
		rest = rest[9:]
		if len(rest) > 0 && rest[0] == '.' {
			d := 1
			for d < len(rest) && isDigit(rest[d]) {
				d++
			}
			if d == 1 || d > 10 {
				return Timeline{}, false
			}
			nsec = atoi(rest[1:d])
			for range 10 - d {
				nsec *= 10
			}
			rest = rest[d:]
		}
		switch {
		case len(rest) == 0:
		case len(rest) == 1 && rest[0] == 'z':
		case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
			isDigits(rest[1:3]) && isDigits(rest[4:6]):
			oh, om := atoi(rest[1:3]), atoi(rest[4:6])
			if oh > 23 || om > 59 {
				return Timeline{}, false
			}
			offset = (oh*60 + om) * 60
			if rest[0] == '-' {
				offset = -offset
			}
		default:
			return Timeline{}, false
		}
	}
	sec := time.Date(year, time.Month(month), day, hour, minute, second, 0, time.UTC).Unix() - int64(offset)
	d := r.seconds(sec, int64(nsec))
	// A day of grace: a date is its midnight, and the partner's day may
	// not be UTC's.
	if d < -86400 {
		return Timeline{Past: true}, true
	}
	return ahead(d / secondsPerMonth), true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func validYear(y int) bool { return 1900 <= y && y <= 9999 }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isDigits(s []byte) bool {
	for _, c := range s {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// atoi reads a run of at most 9 digits, which cannot overflow an int.
func atoi(s []byte) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
