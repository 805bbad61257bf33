package batchfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/jobs"
)

func TestResultsRender(t *testing.T) {
	cols := []Column{{"lead_score", ColInt}, {"conversion_probability", ColFloat}, {"recommendation", ColString},
		{"factors", ColList}, {"raw", ColJSON}, {"warnings", ColWarnings}}
	w := NewResultWriter(cols, 0)
	w.OK(40, "L,1")
	w.Int(87)
	w.Float(0.8712345678)
	w.String(`Hot "now"`)
	w.List([]string{"Demo requested (+)", "Budget (+)"})
	w.JSON([]byte(`{"a":[1]}`))
	w.JSON([]byte(`[{"field":"industry","code":"unknown_value","detail":"d"}]`))
	w.Fail(41, "", &RowError{Code: "invalid_input", Detail: "company_size is required",
		Fields: []jobs.FieldError{{Field: "company_size", Code: "missing_field", Detail: "is required"}}})
	w.OK(42, "é")
	w.Int(3)
	w.Float(math.NaN())
	w.String("")
	w.List(nil)
	w.JSON([]byte(`null`))
	w.JSON(nil)

	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	if err := RenderChunk(bw, &CSVRenderer{}, w.Bytes(), true, nil); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"row", "id", "lead_score", "conversion_probability", "recommendation", "factors", "raw", "warnings", "error_code", "error_detail"},
		{"40", "L,1", "87", "0.8712346", `Hot "now"`, "Demo requested (+); Budget (+)", `{"a":[1]}`,
			`[{"field":"industry","code":"unknown_value","detail":"d"}]`, "", ""},
		{"41", "", "", "", "", "", "", "", "invalid_input", "company_size is required"},
		{"42", "é", "3", "", "", "", "null", "", "", ""},
	}
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("CSV (-want +got):\n%s", diff)
	}

	out.Reset()
	if err := RenderChunk(bw, &JSONLRenderer{}, w.Bytes(), true, nil); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	var lines []map[string]any
	dec := json.NewDecoder(&out)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	wantJSON := []map[string]any{
		{"row": 40.0, "id": "L,1", "lead_score": 87.0, "conversion_probability": 0.8712346, "recommendation": `Hot "now"`,
			"factors": []any{"Demo requested (+)", "Budget (+)"}, "raw": map[string]any{"a": []any{1.0}},
			"warnings": []any{map[string]any{"field": "industry", "code": "unknown_value", "detail": "d"}}},
		{"row": 41.0, "error": map[string]any{"code": "invalid_input", "detail": "company_size is required",
			"errors": []any{map[string]any{"field": "company_size", "code": "missing_field", "detail": "is required"}}}},
		{"row": 42.0, "id": "é", "lead_score": 3.0, "conversion_probability": nil, "recommendation": "", "factors": []any{}, "raw": nil},
	}
	if diff := cmp.Diff(wantJSON, lines); diff != "" {
		t.Errorf("JSONL (-want +got):\n%s", diff)
	}
}

func TestResultsCorrupt(t *testing.T) {
	w := NewResultWriter([]Column{{"x", ColList}}, 0)
	w.OK(1, "a")
	w.List([]string{"p", "q"})
	b := w.Bytes()
	for n := range len(b) {
		rr, err := NewResultReader(b[:n])
		if err != nil {
			continue
		}
		for range 10 {
			res, err := rr.Next()
			if err != nil || res == nil {
				break
			}
		}
	}
}
