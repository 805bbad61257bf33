package jobs

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// timelineAsOf is the reference time of every case that names none.
var timelineAsOf = time.Date(2025, time.March, 15, 0, 0, 0, 0, time.UTC)

// days is n days in months, so that the cases below read as calendar
// arithmetic: from 2025-03-15, Q2 2025's midpoint (May 16, 12:00) is 62.5
// days away.
func days(n float64) float64 { return n / 30.436875 }

// timelineCases are the table of TestParseTimeline and the seeds of
// FuzzParseTimeline. A case with no asOf uses timelineAsOf; one with !ok
// expects the zero Timeline.
var timelineCases = []struct {
	name string
	in   string
	asOf time.Time
	want Timeline
	ok   bool
}{
	// Quarters: Q2 2025 runs April 1 to July 1, its midpoint May 16, 12:00.
	{name: "quarter", in: "Q2 2025", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter lower case", in: "q2 2025", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter year first", in: "2025-Q2", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter year first spaced", in: "2025 Q2", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter year first joined", in: "2025Q2", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter year first slash", in: "2025/Q2", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter slash", in: "Q2/2025", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter dash", in: "Q2-2025", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter comma", in: "Q2, 2025", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter spaced dash", in: "Q2 - 2025", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter apostrophe year", in: "Q2 '25", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter apostrophe joined", in: "Q2'25", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter curly apostrophe", in: "Q2 \u201925", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter two-digit year", in: "Q2 25", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter dash two-digit year", in: "Q2-25", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "quarter comma apostrophe", in: "Q2, '25", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "later quarter", in: "Q3 2025", want: Timeline{Months: days(154)}, ok: true},
	{name: "current quarter past its midpoint", in: "Q1 2025", want: Timeline{}, ok: true},
	{name: "ended quarter", in: "Q4 2024", want: Timeline{Past: true}, ok: true},
	// Half-years.
	{name: "half", in: "H1 2026", want: Timeline{Months: days(382.5)}, ok: true},
	{name: "half year first", in: "2026-H2", want: Timeline{Months: days(565)}, ok: true},
	{name: "half apostrophe", in: "H2 '26", want: Timeline{Months: days(565)}, ok: true},
	{name: "ended half", in: "H2 2024", want: Timeline{Past: true}, ok: true},
	// Months: June 2025's midpoint is June 16, 00:00.
	{name: "month", in: "June 2025", want: Timeline{Months: days(93)}, ok: true},
	{name: "month abbreviated", in: "Jun 2025", want: Timeline{Months: days(93)}, ok: true},
	{name: "month apostrophe", in: "jun '25", want: Timeline{Months: days(93)}, ok: true},
	{name: "month dash", in: "Jun-2025", want: Timeline{Months: days(93)}, ok: true},
	{name: "month comma", in: "June, 2025", want: Timeline{Months: days(93)}, ok: true},
	{name: "month sept", in: "Sept 2025", want: Timeline{Months: days(185)}, ok: true},
	{name: "iso year-month", in: "2025-06", want: Timeline{Months: days(93)}, ok: true},
	{name: "current month before its midpoint", in: "March 2025", want: Timeline{Months: days(1.5)}, ok: true},
	{name: "ended month", in: "Feb 2025", want: Timeline{Past: true}, ok: true},
	// Years: 2026's midpoint is July 2, 12:00.
	{name: "year", in: "2026", want: Timeline{Months: days(474.5)}, ok: true},
	{name: "current year", in: "2025", want: Timeline{Months: days(109.5)}, ok: true},
	{name: "ended year", in: "2024", want: Timeline{Past: true}, ok: true},
	{name: "year typo", in: "2205", want: Timeline{Months: days(65852.5), Far: true}, ok: true},
	{name: "last year there is", in: "9999", want: Timeline{Months: days(2912552.5), Far: true}, ok: true},
	{name: "last month before far", in: "Feb 2035", want: Timeline{Months: days(3624)}, ok: true},
	{name: "first far month", in: "Mar 2035", want: Timeline{Months: days(3653.5), Far: true}, ok: true},
	// Dates and times.
	{name: "date", in: "2025-06-30", want: Timeline{Months: days(107)}, ok: true},
	{name: "datetime utc", in: "2025-06-30T12:00:00Z", want: Timeline{Months: days(107.5)}, ok: true},
	{name: "datetime offset", in: "2025-06-30T12:00:00+02:00", want: Timeline{Months: days(107 + 10.0/24)}, ok: true},
	{name: "datetime negative offset", in: "2025-06-30T12:00:00-06:00", want: Timeline{Months: days(107 + 18.0/24)}, ok: true},
	{name: "datetime fraction", in: "2025-06-30T12:00:00.5Z", want: Timeline{Months: days(107.5 + 0.5/86400)}, ok: true},
	{name: "datetime space no zone", in: "2025-06-30 12:00:00", want: Timeline{Months: days(107.5)}, ok: true},
	{name: "date earlier today", in: "2025-03-14T12:00:00Z", want: Timeline{}, ok: true},
	{name: "date a day before", in: "2025-03-14", want: Timeline{}, ok: true},
	{name: "date over a day before", in: "2025-03-13T23:59:59Z", want: Timeline{Past: true}, ok: true},
	{name: "date last year", in: "2024-12-31", want: Timeline{Past: true}, ok: true},
	{name: "leap day", in: "2028-02-29", want: Timeline{Months: days(1081)}, ok: true},
	// Durations.
	{name: "range", in: "1-3 months", want: Timeline{Months: 2}, ok: true},
	{name: "range spaced", in: "1 - 3 months", want: Timeline{Months: 2}, ok: true},
	{name: "range to", in: "1 to 3 months", want: Timeline{Months: 2}, ok: true},
	{name: "range en dash", in: "1\u20133 months", want: Timeline{Months: 2}, ok: true},
	{name: "range em dash", in: "1\u20143 months", want: Timeline{Months: 2}, ok: true},
	{name: "range mo", in: "3-6 mo", want: Timeline{Months: 4.5}, ok: true},
	{name: "range mos", in: "6-12 mos", want: Timeline{Months: 9}, ok: true},
	{name: "range equal ends", in: "3-3 months", want: Timeline{Months: 3}, ok: true},
	{name: "months", in: "3 months", want: Timeline{Months: 3}, ok: true},
	{name: "month singular", in: "1 month", want: Timeline{Months: 1}, ok: true},
	{name: "months joined", in: "6mo", want: Timeline{Months: 6}, ok: true},
	{name: "months decimal", in: "1.5 months", want: Timeline{Months: 1.5}, ok: true},
	{name: "mths", in: "2 mths", want: Timeline{Months: 2}, ok: true},
	{name: "within", in: "within 3 months", want: Timeline{Months: 1.5}, ok: true},
	{name: "less than", in: "less than 6 months", want: Timeline{Months: 3}, ok: true},
	{name: "less than sign", in: "< 6 months", want: Timeline{Months: 3}, ok: true},
	{name: "less than sign joined", in: "<6 months", want: Timeline{Months: 3}, ok: true},
	{name: "under", in: "under 6 months", want: Timeline{Months: 3}, ok: true},
	{name: "plus", in: "12+ months", want: Timeline{Months: 12 + 1e-9}, ok: true},
	{name: "more than", in: "more than 12 months", want: Timeline{Months: 12 + 1e-9}, ok: true},
	{name: "over", in: "over 12 months", want: Timeline{Months: 12 + 1e-9}, ok: true},
	{name: "greater than sign", in: "> 12 months", want: Timeline{Months: 12 + 1e-9}, ok: true},
	{name: "weeks", in: "2 weeks", want: Timeline{Months: days(14)}, ok: true},
	{name: "week range", in: "1-2 weeks", want: Timeline{Months: days(10.5)}, ok: true},
	{name: "within weeks", in: "within 2 wks", want: Timeline{Months: days(7)}, ok: true},
	{name: "days", in: "10 days", want: Timeline{Months: days(10)}, ok: true},
	{name: "year duration", in: "1 year", want: Timeline{Months: 12}, ok: true},
	{name: "year range", in: "1-2 years", want: Timeline{Months: 18}, ok: true},
	{name: "years plus", in: "2+ years", want: Timeline{Months: 24 + 1e-9}, ok: true},
	{name: "four-digit days", in: "1000-2000 days", want: Timeline{Months: days(1500)}, ok: true},
	{name: "ten years is not far", in: "10 years", want: Timeline{Months: 120}, ok: true},
	{name: "more than ten years is far", in: "10+ years", want: Timeline{Months: 120 + 1e-9, Far: true}, ok: true},
	{name: "longest duration", in: "1200 months", want: Timeline{Months: 1200, Far: true}, ok: true},
	{name: "zero months", in: "0 months", want: Timeline{}, ok: true},
	{name: "duration too long", in: "1201 months"},
	{name: "years too long", in: "101 years"},
	{name: "range reversed", in: "3-1 months"},
	{name: "range without unit", in: "1-3"},
	{name: "negative", in: "-3 months"},
	{name: "prefix and plus", in: "over 12+ months"},
	{name: "prefix and range", in: "within 1-3 months"},
	{name: "duration ago", in: "3 months ago"},
	// Words.
	{name: "immediate", in: "Immediate", want: Timeline{}, ok: true},
	{name: "immediately", in: "Immediately", want: Timeline{}, ok: true},
	{name: "asap", in: "ASAP", want: Timeline{}, ok: true},
	{name: "now", in: "Now", want: Timeline{}, ok: true},
	{name: "urgent", in: "Urgent", want: Timeline{}, ok: true},
	{name: "this month", in: "This month", want: Timeline{}, ok: true},
	{name: "right away", in: "Right away", want: Timeline{}, ok: true},
	{name: "next month", in: "Next month", want: Timeline{Months: 1}, ok: true},
	{name: "this quarter past its midpoint", in: "This quarter", want: Timeline{}, ok: true},
	{name: "this quarter", in: "This quarter", asOf: time.Date(2025, time.April, 1, 0, 0, 0, 0, time.UTC),
		want: Timeline{Months: days(45.5)}, ok: true},
	{name: "next quarter", in: "Next quarter", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "next quarter in december", in: "Next quarter", asOf: time.Date(2025, time.December, 1, 0, 0, 0, 0, time.UTC),
		want: Timeline{Months: days(76)}, ok: true},
	{name: "this year", in: "This year", want: Timeline{Months: days(146)}, ok: true},
	{name: "end of year", in: "End of year", want: Timeline{Months: days(146)}, ok: true},
	{name: "eoy", in: "EOY", want: Timeline{Months: days(146)}, ok: true},
	{name: "next year", in: "Next year", want: Timeline{Months: days(474.5)}, ok: true},
	// Missing.
	{name: "empty", in: "", want: Timeline{Missing: true}, ok: true},
	{name: "whitespace", in: " \t\n ", want: Timeline{Missing: true}, ok: true},
	{name: "not specified", in: "Not specified", want: Timeline{Missing: true}, ok: true},
	{name: "unspecified", in: "Unspecified", want: Timeline{Missing: true}, ok: true},
	{name: "unknown", in: "Unknown", want: Timeline{Missing: true}, ok: true},
	{name: "n/a", in: "N/A", want: Timeline{Missing: true}, ok: true},
	{name: "na", in: "NA", want: Timeline{Missing: true}, ok: true},
	{name: "none", in: "None", want: Timeline{Missing: true}, ok: true},
	{name: "tbd", in: "TBD", want: Timeline{Missing: true}, ok: true},
	{name: "dash", in: "-", want: Timeline{Missing: true}, ok: true},
	// Case and whitespace.
	{name: "surrounding and repeated whitespace", in: "  q2 \t  2025\n", want: Timeline{Months: days(62.5)}, ok: true},
	{name: "no-break space", in: "\u00a0Not\u00a0specified", want: Timeline{Missing: true}, ok: true},
	{name: "mixed case phrase", in: "rIGHT   aWAY", want: Timeline{}, ok: true},
	// Boundaries of the reference time.
	{name: "period ending exactly at asOf", in: "Q4 2024", asOf: time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC),
		want: Timeline{Past: true}, ok: true},
	{name: "period ending just after asOf", in: "Q4 2024", asOf: time.Date(2024, time.December, 31, 23, 59, 59, 999999999, time.UTC),
		want: Timeline{}, ok: true},
	{name: "midpoint exactly at asOf", in: "Q2 2025", asOf: time.Date(2025, time.May, 16, 12, 0, 0, 0, time.UTC),
		want: Timeline{}, ok: true},
	{name: "midpoint a day after asOf", in: "Q2 2025", asOf: time.Date(2025, time.May, 15, 12, 0, 0, 0, time.UTC),
		want: Timeline{Months: days(1)}, ok: true},
	// 2025-03-31 22:00 at UTC-5 is April 1, 03:00 UTC: Q1 has ended there.
	{name: "asOf in another zone, ended", in: "Q1 2025", asOf: time.Date(2025, time.March, 31, 22, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)),
		want: Timeline{Past: true}, ok: true},
	{name: "asOf in another zone, this quarter", in: "this quarter", asOf: time.Date(2025, time.March, 31, 22, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)),
		want: Timeline{Months: days(45.375)}, ok: true},
	{name: "64 bytes", in: "Q2 2025" + strings.Repeat(" ", 57), want: Timeline{Months: days(62.5)}, ok: true},
	{name: "65 bytes", in: "Q2 2025" + strings.Repeat(" ", 58)},
	{name: "65 bytes of padding", in: strings.Repeat(" ", 65)},
	// Not timelines.
	{name: "vague", in: "soon-ish"},
	{name: "word", in: "lots"},
	{name: "quarter five", in: "Q5 2025"},
	{name: "quarter zero", in: "Q0 2025"},
	{name: "half three", in: "H3 2026"},
	{name: "month thirteen", in: "2025-13"},
	{name: "month one digit", in: "2025-6"},
	{name: "five-digit year", in: "Q2 20251"},
	{name: "quarter without year", in: "Q2"},
	{name: "spaced quarter", in: "Q 2 2025"},
	{name: "quarter apostrophe four digits", in: "Q2 '2025"},
	{name: "fiscal year", in: "FY2026"},
	{name: "year too early", in: "1899"},
	{name: "month day", in: "June 25"},
	{name: "bad day", in: "2025-02-30"},
	{name: "bad hour", in: "2025-06-30T24:00:00Z"},
	{name: "bad zone", in: "2025-06-30T12:00:00+0200"},
	{name: "trailing dot", in: "2025."},
	{name: "long number", in: "1234567890 days"},
}

func TestParseTimeline(t *testing.T) {
	// 1e-12 tells 12+1e-9 from 12 yet forgives rounding.
	approx := cmpopts.EquateApprox(0, 1e-12)
	for _, tc := range timelineCases {
		t.Run(tc.name, func(t *testing.T) {
			asOf := tc.asOf
			if asOf.IsZero() {
				asOf = timelineAsOf
			}
			got, ok := ParseTimeline(tc.in, asOf)
			if ok != tc.ok {
				t.Fatalf("ParseTimeline(%q) ok = %t, want %t (got %+v)", tc.in, ok, tc.ok, got)
			}
			if diff := cmp.Diff(tc.want, got, approx); diff != "" {
				t.Errorf("ParseTimeline(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// A bucket test such as "<= 12" must put "12+ months" above 12 and
// "12 months" at it.
func TestParseTimelinePlusIsAbove(t *testing.T) {
	plus, _ := ParseTimeline("12+ months", timelineAsOf)
	exact, _ := ParseTimeline("12 months", timelineAsOf)
	if !(plus.Months > 12) || exact.Months != 12 {
		t.Errorf("12+ months = %v, 12 months = %v; want above 12 and 12", plus.Months, exact.Months)
	}
}

// The hot path reads a timeline per request; it must not allocate.
func TestParseTimelineAllocs(t *testing.T) {
	for _, in := range []string{"Q2 2025", "1-3 months", "Immediate", "June 2025", "2025-06-30T12:00:00Z", "Not specified", "soon-ish"} {
		if n := testing.AllocsPerRun(100, func() { ParseTimeline(in, timelineAsOf) }); n != 0 {
			t.Errorf("ParseTimeline(%q) allocates %v times", in, n)
		}
	}
}

// FuzzParseTimeline checks what callers rely on, for any text and asOf.
func FuzzParseTimeline(f *testing.F) {
	for _, tc := range timelineCases {
		asOf := tc.asOf
		if asOf.IsZero() {
			asOf = timelineAsOf
		}
		f.Add(tc.in, asOf.Unix())
	}
	f.Fuzz(func(t *testing.T, text string, asOfUnix int64) {
		asOf := time.Unix(asOfUnix, 0)
		got, ok := ParseTimeline(text, asOf)
		if again, okAgain := ParseTimeline(text, asOf); again != got || okAgain != ok {
			t.Fatalf("%q: %+v %t, then %+v %t", text, got, ok, again, okAgain)
		}
		switch {
		case !ok:
			if got != (Timeline{}) {
				t.Fatalf("%q: not ok but %+v", text, got)
			}
			return
		case len(text) > maxTimelineLen:
			t.Fatalf("%q: %d bytes read as %+v", text, len(text), got)
		case got.Missing:
			if got != (Timeline{Missing: true}) {
				t.Fatalf("%q: missing but %+v", text, got)
			}
		case math.IsNaN(got.Months) || math.IsInf(got.Months, 0) || got.Months < 0:
			t.Fatalf("%q: months %v", text, got.Months)
		case got.Past && got.Months != 0:
			t.Fatalf("%q: past but months %v", text, got.Months)
		case got.Far != (got.Months > 120):
			t.Fatalf("%q: far %t with months %v", text, got.Far, got.Months)
		}
		// Case and surrounding whitespace never matter.
		upper := []byte(text)
		for i, c := range upper {
			if 'a' <= c && c <= 'z' {
				upper[i] = c - ('a' - 'A')
			}
		}
		if u, uok := ParseTimeline(string(upper), asOf); u != got || uok != ok {
			t.Fatalf("%q: %+v %t, but upper-cased %+v %t", text, got, ok, u, uok)
		}
		if len(text)+2 <= maxTimelineLen {
			if s, sok := ParseTimeline("\t"+text+" ", asOf); s != got || sok != ok {
				t.Fatalf("%q: %+v %t, but padded %+v %t", text, got, ok, s, sok)
			}
		}
	})
}

func BenchmarkParseTimeline(b *testing.B) {
	for _, in := range []string{"Q2 2025", "1-3 months", "12+ months", "Immediate", "Not specified", "June 2025", "2025-06-30T12:00:00Z", strings.Repeat("x", 4096)} {
		name := in
		if len(name) > maxTimelineLen {
			name = "too long"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ParseTimeline(in, timelineAsOf)
			}
		})
	}
}
