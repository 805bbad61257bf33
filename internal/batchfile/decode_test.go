package batchfile

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/jobs"
)

func testSchema(t testing.TB) *jobs.Schema {
	t.Helper()
	var s jobs.Schema
	err := json.Unmarshal([]byte(`{"fields": [
		{"name": "company_size", "type": "number", "min": 0},
		{"name": "demo_requested", "type": "boolean", "default": false},
		{"name": "industry", "type": "category", "values": ["Technology", "Other"], "default": "Other"},
		{"name": "decision_timeline", "type": "category", "values": ["Immediate", "1-3 months"], "required": true},
		{"name": "title", "type": "text"}]}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestCSVDecoder(t *testing.T) {
	s := testSchema(t)
	if _, err := NewCSVDecoder(s, []string{"company_size", "colour"}, strict); err == nil || !strings.Contains(err.Error(), `"colour"`) {
		t.Errorf("unknown column, strict: err = %v", err)
	}
	if _, err := NewCSVDecoder(s, []string{"id", "title", "id"}, lax); err == nil {
		t.Error("a repeated id column was accepted")
	}
	d, err := NewCSVDecoder(s, []string{"\ufeffid", "company_size", "industry", "decision_timeline"}, lax)
	if err != nil {
		t.Fatal(err)
	}
	row := make(jobs.Row, len(s.Fields))
	id, rerr := d.CSV(`L-1,250,technology,"1-3 months"`, row)
	if rerr != nil {
		t.Fatalf("row error %+v", rerr)
	}
	want := jobs.Row{{Kind: jobs.KindNumber, Num: 250}, {Kind: jobs.KindBool}, {Kind: jobs.KindString, Str: "Technology"},
		{Kind: jobs.KindString, Str: "1-3 months"}, {Kind: jobs.KindMissing}}
	if id != "L-1" || !cmp.Equal(want, row, cmp.Comparer(sameValue)) {
		t.Errorf("id %q row %+v", id, row)
	}
	for _, tc := range []struct{ rec, id, code, field string }{
		{`L-2,-5,Other,Immediate`, "L-2", "invalid_input", "company_size"},
		{`L-3,5,Other,`, "L-3", "invalid_input", "decision_timeline"},
		{`L-4,5,Other`, "L-4", CodeMalformedRow, ""},
		{`L-5,5,"Other,Immediate`, "", CodeMalformedRow, ""},
	} {
		id, rerr := d.CSV(tc.rec, row)
		if rerr == nil || rerr.Code != tc.code || id != tc.id {
			t.Errorf("%s: id %q err %+v, want code %s", tc.rec, id, rerr, tc.code)
			continue
		}
		if tc.field != "" && (len(rerr.Fields) != 1 || rerr.Fields[0].Field != tc.field) {
			t.Errorf("%s: fields %+v, want %s", tc.rec, rerr.Fields, tc.field)
		}
	}
}

// Lax (the default) and strict parsing of the tests' rows.
var (
	lax    = jobs.Mode{AsOf: time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)}
	strict = jobs.Mode{Strict: true, AsOf: lax.AsOf}
)

// TestCSVDecoderLax: columns the model does not take are ignored and named
// (a bounded number of them), and each row's warnings are its own.
func TestCSVDecoderLax(t *testing.T) {
	s := testSchema(t)
	header := []string{"lead_owner", "company_size", "industry", "decision_timeline"}
	for i := range 30 {
		header = append(header, "extra_"+strconv.Itoa(i))
	}
	d, err := NewCSVDecoder(s, header, lax)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Ignored) != maxIgnoredNamed+1 || d.Ignored[0] != `"lead_owner"` || d.Ignored[maxIgnoredNamed] != "and 11 more" {
		t.Errorf("ignored %q", d.Ignored)
	}
	row := make(jobs.Row, len(s.Fields))
	tail := strings.Repeat(",x", 30)
	if _, rerr := d.CSV("ann,250,Aerospace,Immediate"+tail, row); rerr != nil || row[2].Str != "Other" ||
		len(d.Warnings) != 1 || d.Warnings[0].Field != "industry" || d.Warnings[0].Code != jobs.CodeUnknownValue {
		t.Errorf("unknown industry: err %+v row %+v warnings %+v", rerr, row, d.Warnings)
	}
	if _, rerr := d.CSV("bob,\" 1000 \",Technology,Immediate"+tail, row); rerr != nil || row[0].Num != 1000 || len(d.Warnings) != 0 {
		t.Errorf("next row: err %+v row %+v warnings %+v", rerr, row, d.Warnings)
	}
}

// TestReportsFitTheBudget: whatever a row makes the parser say, its stored
// report (error or warnings) stays within ReportBudget of its size, and the
// header too wide for any model is refused.
func TestReportsFitTheBudget(t *testing.T) {
	s := testSchema(t)
	var odd strings.Builder
	odd.WriteString(`{"company_size": "x", "demo_requested": "maybe", "industry": 7, "decision_timeline": 1, "title": 2}`)
	row := make(jobs.Row, len(s.Fields))
	_, rerr := NewJSONDecoder(s, lax).JSON([]byte(odd.String()), row)
	fields, _ := json.Marshal(rerr.Fields)
	if rerr == nil || len(rerr.Detail)+len(fields) > ReportBudget(odd.Len()) || len(rerr.Fields) == 0 {
		t.Errorf("error of %d+%d bytes for a %d-byte row (budget %d): %+v", len(rerr.Detail), len(fields), odd.Len(), ReportBudget(odd.Len()), rerr)
	}
	many := make([]jobs.Warning, 40)
	for i := range many {
		many[i] = jobs.Warning{Field: strings.Repeat("f", 64), Code: jobs.CodeUnknownField, Detail: "this model does not take this field; ignored"}
	}
	b := EncodeWarnings(many, 10)
	var back []jobs.Warning
	if err := json.Unmarshal(b, &back); err != nil || len(b) > ReportBudget(10) || back[len(back)-1].Code != jobs.CodeMoreWarnings {
		t.Errorf("%d bytes of warnings for a budget of %d (err %v): %s", len(b), ReportBudget(10), err, b)
	}
	if b := EncodeWarnings(many[:1], 10); !strings.HasPrefix(string(b), `[{"field":"fff`) || !json.Valid(b) {
		t.Errorf("one warning: %s", b)
	}
	wide := make([]string, jobs.MaxRowFields+1)
	for i := range wide {
		wide[i] = "c" + strconv.Itoa(i)
	}
	if _, err := NewCSVDecoder(s, wide, lax); err == nil {
		t.Error("a header wider than any row was accepted")
	}
	if _, err := NewCSVDecoder(s, []string{strings.Repeat("n", jobs.MaxFieldNameBytes+1)}, lax); err == nil {
		t.Error("a column name too long was accepted")
	}
}

func sameValue(a, b jobs.Value) bool {
	return a.Kind == b.Kind && a.Str == b.Str && (a.Kind == jobs.KindMissing || a.Num == b.Num)
}

func TestJSONDecoder(t *testing.T) {
	s := testSchema(t)
	d := NewJSONDecoder(s, lax)
	row := make(jobs.Row, len(s.Fields))
	id, rerr := d.JSON([]byte(`{"id": 17, "company_size": "3", "decision_timeline": "Immediate"}`), row)
	if rerr != nil || id != "17" || row[0].Num != 3 || len(d.Warnings) != 0 {
		t.Errorf("id %q err %+v row %+v warnings %+v", id, rerr, row, d.Warnings)
	}
	if _, rerr := d.JSON([]byte(`{"id": "a", "colour": 1, "decision_timeline": "Immediate"}`), row); rerr != nil ||
		len(d.Warnings) != 1 || d.Warnings[0].Code != jobs.CodeUnknownField {
		t.Errorf("unknown field, lax: %+v %+v", rerr, d.Warnings)
	}
	if _, rerr := NewJSONDecoder(s, strict).JSON([]byte(`{"id": "a", "colour": 1, "decision_timeline": "Immediate"}`), row); rerr == nil ||
		rerr.Fields[0].Code != jobs.CodeUnknownField {
		t.Errorf("unknown field, strict: %+v", rerr)
	}
	for _, bad := range []string{`[1]`, `{"a":1} {}`, `null`, `{`} {
		if _, rerr := d.JSON([]byte(bad), row); rerr == nil || rerr.Code != CodeMalformedRow {
			t.Errorf("%s: %+v", bad, rerr)
		}
	}
}

// IDReader finds the same ids as the decoders, valid row or not.
func TestIDReaderMatchesDecoders(t *testing.T) {
	s := testSchema(t)
	header := []string{"company_size", "id", "decision_timeline"}
	d, err := NewCSVDecoder(s, header, lax)
	if err != nil {
		t.Fatal(err)
	}
	ids := NewIDReader(header, true)
	row := make(jobs.Row, len(s.Fields))
	for _, rec := range []string{`3,lead-1,Immediate`, `-5,"lead,2",Immediate`, `x,lead-3,Never`, `1,lead-4`, `,,`} {
		want, _ := d.CSV(rec, row)
		if got := ids.ID(rec); got != want || (rec != `,,` && got == "") {
			t.Errorf("CSV %q: id %q, decoder %q", rec, got, want)
		}
	}
	if got := NewIDReader([]string{"company_size"}, true).ID("3"); got != "" {
		t.Errorf("no id column: %q", got)
	}
	j := NewJSONDecoder(s, lax)
	ids = NewIDReader(nil, false)
	for _, rec := range []string{`{"id": "a", "company_size": 3, "decision_timeline": "Immediate"}`, `{"id": 17, "colour": 1}`,
		`{"id": null}`, `{"company_size": 3}`, `{"id": "q\"uote"}`} {
		want, _ := j.JSON([]byte(rec), row)
		if got := ids.ID(rec); got != want {
			t.Errorf("JSON %s: id %q, decoder %q", rec, got, want)
		}
	}
	if got := ids.ID(`{`); got != "" {
		t.Errorf("malformed line: id %q", got)
	}
}
