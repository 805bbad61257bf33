package batchfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// IDColumn is the optional input column (or JSON key) carried through to
// the results untouched, so callers can join results back to their leads.
const IDColumn = "id"

// Codes of row errors that come from the file rather than the schema.
const (
	CodeMalformedRow = "malformed_row"
)

// RowError is why one row of a batch was not scored.
type RowError struct {
	Code   string
	Detail string
	Fields []jobs.FieldError
}

// Decoder turns records into rows of one model's schema.
type Decoder struct {
	schema *jobs.Schema
	mode   jobs.Mode
	// CSV: for each header column, the schema field it fills, colID for the
	// id column, colIgnored for a column the model does not take; absent is
	// the list of fields no column names.
	cols    []int
	absent  []int
	fields  []string
	objects map[string]any
	// Ignored names the CSV header's columns that no input takes (at most
	// maxIgnoredNamed of them, then how many more), when parsing is lax.
	Ignored []string
	// Warnings are what lax parsing assumed in the last row decoded.
	Warnings []jobs.Warning
}

// Special CSV columns.
const (
	colID      = -1
	colIgnored = -2
)

// maxIgnoredNamed bounds how many ignored columns a batch names.
const maxIgnoredNamed = 20

// NewCSVDecoder checks a CSV header against the schema: no column may
// repeat, and each must name an input or be the id column; when parsing is
// lax, the model's other columns are ignored (and named in Ignored).
func NewCSVDecoder(schema *jobs.Schema, header []string, m jobs.Mode) (*Decoder, error) {
	if len(header) > jobs.MaxRowFields {
		return nil, fmt.Errorf("the header has %d columns; a row may have at most %d", len(header), jobs.MaxRowFields)
	}
	d := &Decoder{schema: schema, mode: m, cols: make([]int, len(header))}
	seen := make([]bool, len(schema.Fields))
	hasID := false
	var unknown []string
	for c, name := range header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")) // Excel's BOM
		if name == IDColumn {
			if hasID {
				return nil, fmt.Errorf("the header names the %q column twice", IDColumn)
			}
			d.cols[c], hasID = colID, true
			continue
		}
		i := schema.Index(name)
		if i < 0 && len(name) > jobs.MaxFieldNameBytes {
			return nil, fmt.Errorf("column %d's name has %d bytes; names may have at most %d", c+1, len(name), jobs.MaxFieldNameBytes)
		}
		if i < 0 {
			d.cols[c] = colIgnored
			if len(unknown) < maxIgnoredNamed {
				unknown = append(unknown, strconv.Quote(clip(name)))
			}
			continue
		}
		if seen[i] {
			return nil, fmt.Errorf("the header names column %q twice", name)
		}
		seen[i], d.cols[c] = true, i
	}
	if unknown != nil {
		ignored := 0
		for _, col := range d.cols {
			if col == colIgnored {
				ignored++
			}
		}
		if more := ignored - len(unknown); more > 0 {
			unknown = append(unknown, fmt.Sprintf("and %d more", more))
		}
		if m.Strict || schema.Strict {
			return nil, fmt.Errorf("the header has unknown columns %s; this model's inputs are %s, plus an optional %q",
				strings.Join(unknown, ", "), fieldNames(schema), IDColumn)
		}
		d.Ignored = unknown
	}
	for i, ok := range seen {
		if !ok {
			d.absent = append(d.absent, i)
		}
	}
	return d, nil
}

// NewJSONDecoder decodes JSON objects, one a row.
func NewJSONDecoder(schema *jobs.Schema, m jobs.Mode) *Decoder {
	return &Decoder{schema: schema, mode: m}
}

// clip cuts a name to 64 bytes for a message.
func clip(s string) string { return Clip(s, 64) }

func fieldNames(s *jobs.Schema) string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// CSV fills row (len(schema.Fields) values) from one CSV record and returns
// its id, or why the row cannot be scored.
func (d *Decoder) CSV(rec string, row jobs.Row) (string, *RowError) {
	var err error
	d.fields, err = SplitCSV(rec, d.fields)
	if err != nil {
		return "", &RowError{Code: CodeMalformedRow, Detail: err.Error()}
	}
	var id string
	if len(d.fields) != len(d.cols) {
		for c, col := range d.cols {
			if col < 0 && c < len(d.fields) {
				id = d.fields[c]
			}
		}
		return id, &RowError{Code: CodeMalformedRow,
			Detail: fmt.Sprintf("the row has %d fields but the header has %d", len(d.fields), len(d.cols))}
	}
	var errs []jobs.FieldError
	d.Warnings = d.Warnings[:0]
	for c, col := range d.cols {
		switch col {
		case colID:
			id = d.fields[c]
			continue
		case colIgnored:
			continue
		}
		v, fe := d.schema.ParseText(col, d.fields[c], d.mode, &d.Warnings)
		if fe != nil {
			errs = append(errs, *fe)
			continue
		}
		row[col] = v
	}
	for _, col := range d.absent {
		v, fe := d.schema.ParseText(col, "", d.mode, &d.Warnings)
		if fe != nil {
			errs = append(errs, *fe)
			continue
		}
		row[col] = v
	}
	if errs != nil {
		return id, invalid(errs, len(rec))
	}
	return id, nil
}

// JSON fills row from one JSON object (a JSONL line) and returns its id,
// or why the row cannot be scored. A non-string id is kept as its JSON text.
func (d *Decoder) JSON(line []byte, row jobs.Row) (string, *RowError) {
	if fe := jobs.CheckWidth(line); fe != nil {
		return (&IDReader{}).ID(string(line)), invalid([]jobs.FieldError{*fe}, len(line))
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	clear(d.objects)
	if err := dec.Decode(&d.objects); err != nil || d.objects == nil || dec.More() {
		return "", &RowError{Code: CodeMalformedRow, Detail: "the line is not one JSON object"}
	}
	var id string
	if v, ok := d.objects[IDColumn]; ok {
		delete(d.objects, IDColumn)
		if s, ok := v.(string); ok {
			id = s
		} else {
			b, _ := json.Marshal(v)
			id = string(b)
		}
	}
	r, errs, warns := d.schema.Parse(d.objects, d.mode)
	d.Warnings = append(d.Warnings[:0], warns...)
	if errs != nil {
		return id, invalid(errs, len(line))
	}
	copy(row, r)
	return id, nil
}

// ReportBudget is how many bytes the stored report of a row of record
// bytes may take: its warnings, or its error's detail and field errors.
// It grows with the row, not with what the row makes the parser say, so a
// batch's results stay within about twice its input plus a constant a row,
// whatever a tenant uploads.
func ReportBudget(record int) int { return 384 + record }

// invalid is the row error of a row (of record bytes) the schema refused:
// as many field errors as half the budget holds, and a detail naming them
// all, cut to the other half.
func invalid(errs []jobs.FieldError, record int) *RowError {
	half := ReportBudget(record) / 2
	listed, size := 0, 2
	for _, e := range errs {
		b, _ := json.Marshal(e)
		if size+len(b)+1 > half {
			break
		}
		size += len(b) + 1
		listed++
	}
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Field + " " + e.Detail
	}
	detail := strings.Join(parts, "; ")
	if listed < len(errs) {
		detail = fmt.Sprintf("%d errors: %s", len(errs), detail)
	}
	return &RowError{Code: jobs.CodeInvalidInput, Detail: Clip(detail, half), Fields: errs[:listed]}
}

// EncodeWarnings is the stored form of a row's warnings (a JSON list), as
// many as ReportBudget(record) holds, then a count of the rest.
func EncodeWarnings(warns []jobs.Warning, record int) []byte {
	const room = 64 // for the closing count
	budget := ReportBudget(record) - room
	b := []byte{'['}
	for i, w := range warns {
		item, _ := json.Marshal(w)
		if len(b)+len(item)+2 > budget {
			more, _ := json.Marshal(jobs.Warning{Code: jobs.CodeMoreWarnings, Detail: fmt.Sprintf("and %d more warnings", len(warns)-i)})
			b = append(append(b, more...), ',')
			break
		}
		b = append(append(b, item...), ',')
	}
	b[len(b)-1] = ']'
	if len(warns) == 0 {
		b = append(b, ']')
	}
	return b
}

// Clip cuts s to at most n bytes on a rune boundary, marking the cut: for
// text stored once per row, such as why a whole chunk failed.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:max(0, n-3)], "") + "…"
}

// IDReader reads each record's id without a schema, for the rows of a
// chunk that fails before its records are decoded.
type IDReader struct {
	csv    bool
	col    int // the CSV header's id column, or -1
	fields []string
}

// NewIDReader reads ids from CSV records under header, or (csv false) from
// JSON objects' "id".
func NewIDReader(header []string, csv bool) *IDReader {
	r := &IDReader{csv: csv, col: -1}
	for c, name := range header {
		if strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")) == IDColumn {
			r.col = c
		}
	}
	return r
}

// ID returns rec's id as Decoder does (a JSON id that is not a string as
// its JSON text), or "" when it has none or the record cannot be read.
func (r *IDReader) ID(rec string) string {
	if r.csv {
		var err error
		if r.fields, err = SplitCSV(rec, r.fields); err != nil || r.col < 0 || r.col >= len(r.fields) {
			return ""
		}
		return r.fields[r.col]
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(rec), &obj) != nil {
		return ""
	}
	raw, ok := obj[IDColumn]
	if !ok || len(raw) == 0 {
		return ""
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
