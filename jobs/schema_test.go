package jobs

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func leadSchema(t testing.TB) *Schema {
	t.Helper()
	var s Schema
	err := json.Unmarshal([]byte(`{"fields": [
		{"name": "company_size", "type": "number", "min": 0, "integer": true},
		{"name": "demo_requested", "type": "boolean", "default": false},
		{"name": "industry", "type": "category", "values": ["Technology", "Finance"], "default": "Technology"},
		{"name": "title", "type": "text"},
		{"name": "engagement_score", "type": "number", "required": true, "max": 100},
		{"name": "region", "type": "category", "values": ["EMEA", "North America"]},
		{"name": "decision_timeline", "type": "timeline",
		 "values": ["Immediate", "1-3 months", "3-6 months", "6-12 months", "12+ months"], "max_months": [1, 3, 6, 12]}
	]}`), &s)
	if err != nil {
		t.Fatalf("decode schema: %v", err)
	}
	return &s
}

// asOf is the reference time of the tests' timelines.
var asOf = time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)

var (
	nan     = cmpopts.EquateNaNs()
	missing = Value{Kind: KindMissing, Num: math.NaN()}
)

func num(n float64) Value { return Value{Kind: KindNumber, Num: n} }
func str(s string) Value  { return Value{Kind: KindString, Str: s} }
func boolean01(b bool) Value {
	return Value{Kind: KindBool, Num: map[bool]float64{false: 0, true: 1}[b]}
}

// parseOne parses {field: value} (value as JSON) beside a valid
// engagement_score and returns the field's value, its error and warnings.
func parseOne(t *testing.T, s *Schema, field, value string, m Mode) (Value, []FieldError, []Warning) {
	t.Helper()
	in := decodeObject(t, `{"engagement_score": 50, "`+field+`": `+value+`}`)
	row, errs, warns := s.Parse(in, m)
	if row == nil {
		return Value{}, errs, warns
	}
	return row[s.Index(field)], errs, warns
}

func decodeObject(t *testing.T, text string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var in map[string]any
	if err := dec.Decode(&in); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestCoercions covers every coercion of lax parsing, and what strict
// parsing does with the same value.
func TestCoercions(t *testing.T) {
	s := leadSchema(t)
	for _, tc := range []struct {
		name, field, value string
		lax                Value  // the value lax parsing gives
		laxErr             string // or the code it refuses with
		laxWarn            string // the warning code, if any
		strictErr          string // the code strict parsing refuses with; "" = same as lax, no warning
	}{
		{name: "JSON number", field: "company_size", value: `1000`, lax: num(1000)},
		{name: "number as string", field: "company_size", value: `"1000"`, lax: num(1000), strictErr: CodeInvalidType},
		{name: "number as padded string", field: "engagement_score", value: `" 75.5 "`, lax: num(75.5), strictErr: CodeInvalidType},
		{name: "exponent in a string", field: "engagement_score", value: `"7.5e1"`, lax: num(75), strictErr: CodeInvalidType},
		{name: "negative in a string", field: "company_size", value: `"-1"`, laxErr: CodeOutOfRange, strictErr: CodeInvalidType},
		{name: "word for a number", field: "company_size", value: `"lots"`, laxErr: CodeInvalidType},
		{name: "hex is not decimal", field: "company_size", value: `"0x10"`, laxErr: CodeInvalidType},
		{name: "inf is not a number", field: "engagement_score", value: `"inf"`, laxErr: CodeInvalidType},
		{name: "NaN is not a number", field: "engagement_score", value: `"NaN"`, laxErr: CodeInvalidType},
		{name: "thousands separator", field: "company_size", value: `"1,000"`, laxErr: CodeInvalidType},
		{name: "too large a number", field: "engagement_score", value: `1e400`, laxErr: CodeInvalidValue},
		{name: "too large in a string", field: "engagement_score", value: `"1e400"`, laxErr: CodeInvalidValue, strictErr: CodeInvalidType},
		{name: "integral float for an integer", field: "company_size", value: `10.0`, lax: num(10)},
		{name: "integral float string for an integer", field: "company_size", value: `"10.0"`, lax: num(10), strictErr: CodeInvalidType},
		{name: "fraction for an integer", field: "company_size", value: `10.5`, laxErr: CodeInvalidType},
		{name: "blank string is absent", field: "company_size", value: `"  "`, lax: missing, strictErr: CodeInvalidType},
		{name: "blank string takes the default", field: "industry", value: `""`, lax: str("Technology"), strictErr: CodeInvalidValue},
		{name: "blank required field", field: "engagement_score", value: `""`, laxErr: CodeMissingField, strictErr: CodeInvalidType},
		{name: "null is absent", field: "company_size", value: `null`, lax: missing},
		{name: "boolean", field: "demo_requested", value: `true`, lax: boolean01(true)},
		{name: "boolean as 0/1", field: "demo_requested", value: `0`, lax: boolean01(false)},
		{name: "boolean as yes", field: "demo_requested", value: `"Yes"`, lax: boolean01(true)},
		{name: "boolean as on", field: "demo_requested", value: `"on"`, lax: boolean01(true)},
		{name: "boolean as f", field: "demo_requested", value: `"F"`, lax: boolean01(false)},
		{name: "boolean as a word it is not", field: "demo_requested", value: `"maybe"`, laxErr: CodeInvalidType},
		{name: "boolean as 2", field: "demo_requested", value: `2`, laxErr: CodeInvalidType},
		{name: "category in another case", field: "industry", value: `"FINANCE"`, lax: str("Finance")},
		{name: "category with spaces", field: "region", value: `"  north   america "`, lax: str("North America")},
		{name: "unknown category takes the default", field: "industry", value: `"Aerospace"`, lax: str("Technology"),
			laxWarn: CodeUnknownValue, strictErr: CodeInvalidValue},
		{name: "unknown category without a default is missing", field: "region", value: `"APAC"`, lax: missing,
			laxWarn: CodeUnknownValue, strictErr: CodeInvalidValue},
		{name: "number for a category", field: "industry", value: `3`, laxErr: CodeInvalidType},
		{name: "text", field: "title", value: `"VP Sales"`, lax: str("VP Sales")},
		{name: "number for text", field: "title", value: `3`, laxErr: CodeInvalidType},
		{name: "timeline bucket", field: "decision_timeline", value: `"1-3 Months"`, lax: str("1-3 months")},
		{name: "timeline quarter", field: "decision_timeline", value: `"Q4 2025"`, lax: str("6-12 months")},
		{name: "timeline ISO date", field: "decision_timeline", value: `"2025-05-01"`, lax: str("1-3 months")},
		{name: "timeline not specified", field: "decision_timeline", value: `"Not specified"`, lax: missing},
		{name: "timeline past quarter", field: "decision_timeline", value: `"Q2 2024"`, lax: str("Immediate"),
			laxWarn: CodeTimelinePast, strictErr: CodeInvalidValue},
		{name: "timeline far off", field: "decision_timeline", value: `"2205-01-01"`, lax: str("12+ months"),
			laxWarn: CodeTimelineFar, strictErr: CodeInvalidValue},
		{name: "timeline unknown word", field: "decision_timeline", value: `"soon-ish"`, lax: missing,
			laxWarn: CodeUnknownValue, strictErr: CodeInvalidValue},
		{name: "number for a timeline", field: "decision_timeline", value: `3`, laxErr: CodeInvalidType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, errs, warns := parseOne(t, s, tc.field, tc.value, Mode{AsOf: asOf})
			checkField(t, "lax", tc.field, v, errs, warns, tc.lax, tc.laxErr, tc.laxWarn)
			strictErr := tc.strictErr
			if strictErr == "" {
				strictErr = tc.laxErr
			}
			v, errs, warns = parseOne(t, s, tc.field, tc.value, Mode{Strict: true, AsOf: asOf})
			if strictErr == "" {
				checkField(t, "strict", tc.field, v, errs, warns, tc.lax, "", "")
			} else {
				checkField(t, "strict", tc.field, v, errs, warns, Value{}, strictErr, "")
			}
		})
	}
}

func checkField(t *testing.T, mode, field string, v Value, errs []FieldError, warns []Warning, want Value, wantErr, wantWarn string) {
	t.Helper()
	if wantErr != "" {
		if len(errs) != 1 || errs[0].Field != field || errs[0].Code != wantErr || errs[0].Detail == "" {
			t.Errorf("%s: errors %+v, want one %s on %s", mode, errs, wantErr, field)
		}
		return
	}
	if errs != nil {
		t.Fatalf("%s: unexpected errors %+v", mode, errs)
	}
	if diff := cmp.Diff(want, v, nan); diff != "" {
		t.Errorf("%s: value (-want +got):\n%s", mode, diff)
	}
	switch {
	case wantWarn == "" && warns != nil:
		t.Errorf("%s: unexpected warnings %+v", mode, warns)
	case wantWarn != "" && (len(warns) != 1 || warns[0].Field != field || warns[0].Code != wantWarn || warns[0].Detail == ""):
		t.Errorf("%s: warnings %+v, want one %s on %s", mode, warns, wantWarn, field)
	}
}

func TestParse(t *testing.T) {
	s := leadSchema(t)
	for _, tc := range []struct {
		name   string
		in     string
		strict bool
		want   Row
		errs   []FieldError
		warns  []Warning
	}{
		{
			name: "all fields",
			in: `{"company_size": 250, "demo_requested": true, "industry": "finance", "title": "VP Sales", "engagement_score": 80,
				"region": "EMEA", "decision_timeline": "Immediate"}`,
			want: Row{num(250), boolean01(true), str("Finance"), str("VP Sales"), num(80), str("EMEA"), str("Immediate")},
		},
		{
			name: "defaults and missing",
			in:   `{"engagement_score": 10, "title": null}`,
			want: Row{missing, boolean01(false), str("Technology"), missing, num(10), missing, missing},
		},
		{
			name:   "every kind of error at once",
			strict: true,
			in:     `{"company_size": "big", "demo_requested": "maybe", "industry": "Retail", "color": 1, "title": 3}`,
			errs: []FieldError{
				{Field: "color", Code: CodeUnknownField},
				{Field: "company_size", Code: CodeInvalidType},
				{Field: "demo_requested", Code: CodeInvalidType},
				{Field: "engagement_score", Code: CodeMissingField},
				{Field: "industry", Code: CodeInvalidValue},
				{Field: "title", Code: CodeInvalidType},
			},
		},
		{
			name: "lax scores what it can and says so",
			in:   `{"engagement_score": "55", "industry": "Retail", "color": 1, "decision_timeline": "Q1 2020"}`,
			want: Row{missing, boolean01(false), str("Technology"), missing, num(55), missing, str("Immediate")},
			warns: []Warning{
				{Field: "color", Code: CodeUnknownField},
				{Field: "industry", Code: CodeUnknownValue},
				{Field: "decision_timeline", Code: CodeTimelinePast},
			},
		},
		{
			name: "bounds",
			in:   `{"company_size": -1, "engagement_score": 101}`,
			errs: []FieldError{{Field: "company_size", Code: CodeOutOfRange}, {Field: "engagement_score", Code: CodeOutOfRange}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row, errs, warns := s.Parse(decodeObject(t, tc.in), Mode{Strict: tc.strict, AsOf: asOf})
			if diff := cmp.Diff(tc.want, row, nan); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.errs, errs, cmpopts.IgnoreFields(FieldError{}, "Detail")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warns, warns, cmpopts.IgnoreFields(Warning{}, "Detail")); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			for _, e := range errs {
				if e.Detail == "" {
					t.Errorf("error for %s has no detail", e.Field)
				}
			}
		})
	}
}

// TestModelStrict: a schema's own Strict switch wins over lax options.
func TestModelStrict(t *testing.T) {
	s := leadSchema(t)
	s.Strict = true
	_, errs, _ := s.Parse(decodeObject(t, `{"engagement_score": "50"}`), Mode{AsOf: asOf})
	if len(errs) != 1 || errs[0].Code != CodeInvalidType {
		t.Fatalf("errors %+v, want invalid_type on engagement_score", errs)
	}
}

// TestReportsAreBounded: however many unknown fields or however long a
// value, the errors and warnings of a row stay small; a row too wide to be
// any model's is refused with one error.
func TestReportsAreBounded(t *testing.T) {
	s := leadSchema(t)
	row := func(keys int, keyLen int) map[string]any {
		in := map[string]any{"engagement_score": 50, "industry": strings.Repeat("x", 1<<20)}
		for i := range keys {
			name := strconv.Itoa(i)
			in[name+strings.Repeat("k", keyLen-len(name))] = 1
		}
		return in
	}
	for _, tc := range []struct {
		name    string
		in      map[string]any
		reports int
		code    string // of the one error, when the row is refused whole
	}{
		{"many unknown fields", row(MaxRowFields-2, 100), maxUnknownNamed + 2, ""},
		{"too many fields", row(100_000, 100), 1, CodeTooManyFields},
		{"a field name too long", row(1, MaxFieldNameBytes+1), 1, CodeFieldNameTooLong},
	} {
		for _, strict := range []bool{false, true} {
			_, errs, warns := s.Parse(tc.in, Mode{Strict: strict, AsOf: asOf})
			b, _ := json.Marshal(struct {
				E []FieldError
				W []Warning
			}{errs, warns})
			if len(b) > 4096 || len(errs)+len(warns) != tc.reports || tc.code != "" && errs[0].Code != tc.code {
				t.Errorf("%s, strict=%v: errors %d, warnings %d, %d bytes; want %d reports (%s) in under 4 KiB",
					tc.name, strict, len(errs), len(warns), len(b), tc.reports, tc.code)
			}
		}
	}
}

func TestParseText(t *testing.T) {
	s := leadSchema(t)
	for _, tc := range []struct {
		field, text string
		strict      bool
		want        Value
		code        string
		warn        string
	}{
		{field: "company_size", text: " 12 ", want: num(12)},
		{field: "company_size", text: " 12 ", strict: true, want: num(12)},
		{field: "company_size", text: "12.5", code: CodeInvalidType},
		{field: "engagement_score", text: "1e400", code: CodeInvalidValue},
		{field: "company_size", text: "twelve", code: CodeInvalidType},
		{field: "demo_requested", text: "Yes", want: boolean01(true)},
		{field: "demo_requested", text: "", want: boolean01(false)},
		{field: "industry", text: "TECHNOLOGY", want: str("Technology")},
		{field: "industry", text: "Mining", want: str("Technology"), warn: CodeUnknownValue},
		{field: "industry", text: "Mining", strict: true, code: CodeInvalidValue},
		{field: "decision_timeline", text: "Q3 2025", want: str("3-6 months")},
		{field: "engagement_score", text: "", code: CodeMissingField},
	} {
		var warns []Warning
		v, fe := s.ParseText(s.Index(tc.field), tc.text, Mode{Strict: tc.strict, AsOf: asOf}, &warns)
		if tc.code != "" {
			if fe == nil || fe.Code != tc.code {
				t.Errorf("%s=%q: got %+v, want code %s", tc.field, tc.text, fe, tc.code)
			}
			continue
		}
		if fe != nil {
			t.Errorf("%s=%q: unexpected error %v", tc.field, tc.text, fe)
		} else if v != tc.want {
			t.Errorf("%s=%q: got %+v, want %+v", tc.field, tc.text, v, tc.want)
		}
		if (tc.warn == "") != (len(warns) == 0) || (tc.warn != "" && warns[0].Code != tc.warn) {
			t.Errorf("%s=%q: warnings %+v, want %q", tc.field, tc.text, warns, tc.warn)
		}
	}
}

func TestSchemaRejectsBadDeclarations(t *testing.T) {
	for name, body := range map[string]string{
		"duplicate":               `{"fields": [{"name": "a", "type": "number"}, {"name": "a", "type": "number"}]}`,
		"unknown type":            `{"fields": [{"name": "a", "type": "date"}]}`,
		"empty values":            `{"fields": [{"name": "a", "type": "category"}]}`,
		"bad default":             `{"fields": [{"name": "a", "type": "number", "default": "x"}]}`,
		"unnamed field":           `{"fields": [{"type": "number"}]}`,
		"timeline without bounds": `{"fields": [{"name": "a", "type": "timeline", "values": ["soon", "later"]}]}`,
		"timeline bounds falling": `{"fields": [{"name": "a", "type": "timeline", "values": ["a", "b", "c"], "max_months": [3, 1]}]}`,
		"integer text":            `{"fields": [{"name": "a", "type": "text", "integer": true}]}`,
	} {
		var s Schema
		if err := json.Unmarshal([]byte(body), &s); err == nil {
			t.Errorf("%s: schema accepted, want an error", name)
		}
	}
}

func TestParseOptions(t *testing.T) {
	received := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		raw     string
		explain bool
		strict  bool
		asOf    time.Time
		bad     bool
	}{
		{raw: ``, explain: true, asOf: received},
		{raw: `null`, explain: true, asOf: received},
		{raw: `{}`, explain: true, asOf: received},
		{raw: `{"explain": false}`, explain: false, asOf: received},
		{raw: `{"explain": true, "strict": true}`, explain: true, strict: true, asOf: received},
		{raw: `{"as_of": "2025-06-01"}`, explain: true, asOf: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
		{raw: `{"as_of": "2025-06-01T09:30:00+02:00"}`, explain: true, asOf: time.Date(2025, 6, 1, 7, 30, 0, 0, time.UTC)},
		{raw: `{"as_of": "June 1st"}`, bad: true},
		{raw: `{"explian": false}`, bad: true},
		{raw: `{"explain": "no"}`, bad: true},
		{raw: `{"strict": 1}`, bad: true},
		{raw: `[1]`, bad: true},
	} {
		o, err := ParseOptions(json.RawMessage(tc.raw))
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v, want error %v", tc.raw, err, tc.bad)
			continue
		}
		if err != nil {
			continue
		}
		m := o.Mode(received)
		if o.WantExplain() != tc.explain || m.Strict != tc.strict || !m.AsOf.Equal(tc.asOf) {
			t.Errorf("%q: explain %v strict %v as_of %v, want %v %v %v", tc.raw, o.WantExplain(), m.Strict, m.AsOf, tc.explain, tc.strict, tc.asOf)
		}
	}
}
