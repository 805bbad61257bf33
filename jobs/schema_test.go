package jobs

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func leadSchema(t *testing.T) *Schema {
	t.Helper()
	var s Schema
	err := json.Unmarshal([]byte(`{"fields": [
		{"name": "company_size", "type": "number", "min": 0},
		{"name": "demo_requested", "type": "boolean", "default": false},
		{"name": "industry", "type": "category", "values": ["Technology", "Finance"], "default": "Technology"},
		{"name": "title", "type": "text"},
		{"name": "engagement_score", "type": "number", "required": true, "max": 100}
	]}`), &s)
	if err != nil {
		t.Fatalf("decode schema: %v", err)
	}
	return &s
}

func TestValidate(t *testing.T) {
	s := leadSchema(t)
	nan := cmpopts.EquateNaNs()
	for _, tc := range []struct {
		name string
		in   string
		want Row
		errs []FieldError
	}{
		{
			name: "all fields",
			in:   `{"company_size": 250, "demo_requested": true, "industry": "finance", "title": "VP Sales", "engagement_score": 80}`,
			want: Row{{Kind: KindNumber, Num: 250}, {Kind: KindBool, Num: 1}, {Kind: KindString, Str: "Finance"}, {Kind: KindString, Str: "VP Sales"}, {Kind: KindNumber, Num: 80}},
		},
		{
			name: "defaults and missing",
			in:   `{"engagement_score": 10, "title": null}`,
			want: Row{{Kind: KindMissing, Num: math.NaN()}, {Kind: KindBool, Num: 0}, {Kind: KindString, Str: "Technology"}, {Kind: KindMissing, Num: math.NaN()}, {Kind: KindNumber, Num: 10}},
		},
		{
			name: "every kind of error at once",
			in:   `{"company_size": "big", "demo_requested": "maybe", "industry": "Retail", "color": 1, "title": 3}`,
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
			name: "bounds",
			in:   `{"company_size": -1, "engagement_score": 101}`,
			errs: []FieldError{{Field: "company_size", Code: CodeOutOfRange}, {Field: "engagement_score", Code: CodeOutOfRange}},
		},
		{
			name: "booleans as numbers and words",
			in:   `{"demo_requested": 1, "engagement_score": 0}`,
			want: Row{{Kind: KindMissing, Num: math.NaN()}, {Kind: KindBool, Num: 1}, {Kind: KindString, Str: "Technology"}, {Kind: KindMissing, Num: math.NaN()}, {Kind: KindNumber, Num: 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in map[string]any
			if err := json.Unmarshal([]byte(tc.in), &in); err != nil {
				t.Fatal(err)
			}
			row, errs := s.Validate(in)
			if diff := cmp.Diff(tc.want, row, nan); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.errs, errs, cmpopts.IgnoreFields(FieldError{}, "Detail")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			for _, e := range errs {
				if e.Detail == "" {
					t.Errorf("error for %s has no detail", e.Field)
				}
			}
		})
	}
}

func TestParseText(t *testing.T) {
	s := leadSchema(t)
	for _, tc := range []struct {
		field, text string
		want        Value
		code        string
	}{
		{field: "company_size", text: " 12.5 ", want: Value{Kind: KindNumber, Num: 12.5}},
		{field: "company_size", text: "twelve", code: CodeInvalidType},
		{field: "demo_requested", text: "Yes", want: Value{Kind: KindBool, Num: 1}},
		{field: "demo_requested", text: "", want: Value{Kind: KindBool, Num: 0}},
		{field: "industry", text: "TECHNOLOGY", want: Value{Kind: KindString, Str: "Technology"}},
		{field: "engagement_score", text: "", code: CodeMissingField},
	} {
		v, fe := s.ParseText(s.Index(tc.field), tc.text)
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
	}
}

func TestSchemaRejectsBadDeclarations(t *testing.T) {
	for name, body := range map[string]string{
		"duplicate":     `{"fields": [{"name": "a", "type": "number"}, {"name": "a", "type": "number"}]}`,
		"unknown type":  `{"fields": [{"name": "a", "type": "date"}]}`,
		"empty values":  `{"fields": [{"name": "a", "type": "category"}]}`,
		"bad default":   `{"fields": [{"name": "a", "type": "number", "default": "x"}]}`,
		"unnamed field": `{"fields": [{"type": "number"}]}`,
	} {
		var s Schema
		if err := json.Unmarshal([]byte(body), &s); err == nil {
			t.Errorf("%s: schema accepted, want an error", name)
		}
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		explain bool
		bad     bool
	}{
		{raw: ``, explain: true},
		{raw: `null`, explain: true},
		{raw: `{}`, explain: true},
		{raw: `{"explain": false}`, explain: false},
		{raw: `{"explain": true}`, explain: true},
		{raw: `{"explian": false}`, bad: true},
		{raw: `{"explain": "no"}`, bad: true},
		{raw: `[1]`, bad: true},
	} {
		o, err := ParseOptions(json.RawMessage(tc.raw))
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v, want error %v", tc.raw, err, tc.bad)
			continue
		}
		if err == nil && o.WantExplain() != tc.explain {
			t.Errorf("%q: explain %v, want %v", tc.raw, o.WantExplain(), tc.explain)
		}
	}
}
