package jobs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseInputs(t *testing.T) {
	s := leadSchema(t)
	row := func(i int) *int { return &i }
	for _, tc := range []struct {
		name   string
		raw    string
		strict bool
		rows   int
		list   bool
		warns  []Warning
		err    *Error
	}{
		{name: "one object", raw: `{"engagement_score": 1}`, rows: 1},
		{name: "a list", raw: `[{"engagement_score": 1}, {"engagement_score": "2"}]`, rows: 2, list: true},
		{name: "warnings name their row", raw: `[{"engagement_score": 1}, {"engagement_score": 2, "industry": "Mining"}]`,
			rows: 2, list: true, warns: []Warning{{Row: row(1), Field: "industry", Code: CodeUnknownValue}}},
		{name: "a single object's warnings have no row", raw: `{"engagement_score": 2, "extra": true}`,
			rows: 1, warns: []Warning{{Field: "extra", Code: CodeUnknownField}}},
		{name: "errors name their row", raw: `[{"engagement_score": 1}, {"engagement_score": "x"}]`, list: true,
			err: &Error{Code: CodeInvalidInput, Fields: []FieldError{{Row: row(1), Field: "engagement_score", Code: CodeInvalidType}}}},
		{name: "strict refuses what lax warns of", raw: `{"engagement_score": 2, "extra": true}`, strict: true,
			err: &Error{Code: CodeInvalidInput, Fields: []FieldError{{Field: "extra", Code: CodeUnknownField}}}},
		{name: "absent", raw: ``, err: &Error{Code: CodeInvalidInput, Fields: []FieldError{{Field: "inputs", Code: CodeMissingField}}}},
		{name: "null", raw: `null`, err: &Error{Code: CodeInvalidInput, Fields: []FieldError{{Field: "inputs", Code: CodeMissingField}}}},
		{name: "a number", raw: `3`, err: &Error{Code: CodeInvalidInput}},
		{name: "a list of numbers", raw: `[3]`, list: true, err: &Error{Code: CodeInvalidInput}},
		{name: "a list with null", raw: `[null]`, list: true, err: &Error{Code: CodeInvalidInput}},
		{name: "an empty list", raw: `[]`, list: true, err: &Error{Code: CodeInvalidInput}},
		{name: "too many rows", raw: `[{}, {}, {}]`, list: true, err: &Error{Code: CodeInvalidInput}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseInputs(s, json.RawMessage(tc.raw), 2, Mode{Strict: tc.strict, AsOf: asOf})
			if diff := cmp.Diff(tc.err, err, cmpopts.IgnoreFields(Error{}, "Detail"), cmpopts.IgnoreFields(FieldError{}, "Detail")); diff != "" {
				t.Fatalf("error (-want +got):\n%s", diff)
			}
			if err != nil {
				if err.Detail == "" || in.Rows != nil {
					t.Errorf("error %+v with rows %v: want a detail and no rows", err, in.Rows)
				}
				return
			}
			if len(in.Rows) != tc.rows || in.List != tc.list {
				t.Errorf("%d rows, list %v; want %d, %v", len(in.Rows), in.List, tc.rows, tc.list)
			}
			if diff := cmp.Diff(tc.warns, in.Warnings, cmpopts.IgnoreFields(Warning{}, "Detail")); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseInputsListsAtMostMaxReports: a list of bad or odd rows lists
// MaxReports errors (the detail counts the rest), or MaxReports warnings and
// a count.
func TestParseInputsListsAtMostMaxReports(t *testing.T) {
	s := leadSchema(t)
	rows := func(row string) json.RawMessage {
		return json.RawMessage("[" + strings.TrimSuffix(strings.Repeat(row+",", 100), ",") + "]")
	}
	_, err := ParseInputs(s, rows(`{"company_size": "x", "engagement_score": "y"}`), 100, Mode{Strict: true, AsOf: asOf})
	if err == nil || len(err.Fields) != MaxReports || !strings.Contains(err.Detail, "150 more errors") {
		t.Errorf("errors: %d listed, detail %q; want %d and 150 more", len(err.Fields), err.Detail, MaxReports)
	}
	in, err := ParseInputs(s, rows(`{"engagement_score": 1, "industry": "Mining"}`), 100, Mode{AsOf: asOf})
	last := in.Warnings[len(in.Warnings)-1]
	if err != nil || len(in.Warnings) != MaxReports+1 || last.Code != CodeMoreWarnings || last.Detail != "and 50 more warnings" {
		t.Errorf("warnings: %d, last %+v (err %v)", len(in.Warnings), last, err)
	}
}

// FuzzParseInputs: whatever the inputs, parsing does not panic, its reports
// stay small, and lax parsing is strict parsing plus coercions: a row strict
// parsing accepts, lax parsing reads the same, with no warning.
func FuzzParseInputs(f *testing.F) {
	for _, seed := range []string{
		`{"engagement_score": 1}`, `[{"engagement_score": "2", "industry": "finance"}]`,
		`{"engagement_score": " 7.5e1 ", "company_size": "10.0", "decision_timeline": "Q2 '25", "x": {}}`,
		`{"engagement_score": 1e400, "region": "  north america", "demo_requested": "off"}`,
		`[{"decision_timeline": "12+ months", "engagement_score": 0}, null]`, `3`, `[]`, `{"": ""}`,
	} {
		f.Add([]byte(seed))
	}
	s := leadSchema(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		lax, lerr := ParseInputs(s, raw, 5, Mode{AsOf: asOf})
		strict, serr := ParseInputs(s, raw, 5, Mode{Strict: true, AsOf: asOf})
		for _, e := range []*Error{lerr, serr} {
			if e == nil {
				continue
			}
			b, _ := json.Marshal(e)
			if len(b) > 5*(len(s.Fields)+maxUnknownNamed+1)*(2*maxQuoted+512) {
				t.Fatalf("a %d-byte error for %d bytes of inputs", len(b), len(raw))
			}
		}
		if serr != nil {
			return
		}
		if lerr != nil {
			t.Fatalf("strict accepted what lax refused: %v", lerr)
		}
		if len(lax.Warnings) != 0 || !cmp.Equal(strict.Rows, lax.Rows, cmpopts.EquateNaNs()) {
			t.Fatalf("lax read %v with warnings %v; strict read %v", lax.Rows, lax.Warnings, strict.Rows)
		}
	})
}

// BenchmarkParseInputs: a predict's inputs as each tier reads them, once
// at the API and once at the worker: a plain lead, and one lax reading has
// to coerce and warn about.
func BenchmarkParseInputs(b *testing.B) {
	s := leadSchema(b)
	for name, raw := range map[string]string{
		"plain": `{"company_size": 1000, "engagement_score": 75, "demo_requested": true, "industry": "Finance",
			"decision_timeline": "1-3 months", "title": "Director of Sales", "region": "EMEA"}`,
		"coerced": `{"company_size": "1000", "engagement_score": " 75 ", "demo_requested": "yes", "industry": "Mining",
			"decision_timeline": "Q2 2025", "title": "Director of Sales", "lead_owner": "ann"}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseInputs(s, json.RawMessage(raw), 100, Mode{AsOf: asOf}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
