package batchfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/hokusai-ai/inference-queue/internal/pace"
)

// Renderer writes decoded results as one output format.
type Renderer interface {
	// Header writes what precedes the first row, given the columns.
	Header(w *bufio.Writer, cols []Column) error
	// Row writes one result.
	Row(w *bufio.Writer, cols []Column, r *Result) error
	// End writes what follows the last row of a stream that ended cleanly:
	// rows results were written and the batch's status is status. A stream
	// that fails is broken off instead, so End is what sets a complete file
	// apart from a cut one, for tools that do not read HTTP trailers.
	End(w *bufio.Writer, rows int, status string) error
}

// Tally is a Renderer that counts the rows the one it wraps writes, and
// how many of them are failed rows, so a stream can say at its end how many
// it sent and what they add up to.
type Tally struct {
	Renderer
	Rows, Failed int
}

// Row writes one result with the wrapped Renderer and counts it.
func (t *Tally) Row(w *bufio.Writer, cols []Column, r *Result) error {
	if err := t.Renderer.Row(w, cols, r); err != nil {
		return err
	}
	t.Rows++
	if r.Failed {
		t.Failed++
	}
	return nil
}

// CSVRenderer writes a header row, then per row: its number, its id, one
// cell per column, and error_code and error_detail (empty when scored). A
// failed row leaves the header's columns empty, whatever its chunk's.
type CSVRenderer struct {
	buf   []byte
	ncols int
}

// Header writes the header row.
func (c *CSVRenderer) Header(w *bufio.Writer, cols []Column) error {
	b := append(c.buf[:0], "row,id"...)
	for _, col := range cols {
		b = append(b, ',')
		b = appendCSV(b, []byte(col.Name))
	}
	b = append(b, ",error_code,error_detail\n"...)
	c.buf, c.ncols = b, len(cols)
	_, err := w.Write(b)
	return err
}

// Row writes one row.
func (c *CSVRenderer) Row(w *bufio.Writer, cols []Column, r *Result) error {
	b := appendInt(c.buf[:0], r.Row)
	b = append(b, ',')
	b = appendCSV(b, r.ID)
	if r.Failed {
		for range c.ncols {
			b = append(b, ',')
		}
		b = append(b, ',')
		b = appendCSV(b, r.Code)
		b = append(b, ',')
		b = appendCSV(b, r.Detail)
	} else {
		for i, col := range cols {
			b = append(b, ',')
			if col.Type == ColList {
				b = appendCSV(b, bytes.Join(r.Lists[i], []byte("; ")))
				continue
			}
			b = appendCSV(b, r.Values[i])
		}
		b = append(b, ",,"...)
	}
	b = append(b, '\n')
	c.buf = b
	_, err := w.Write(b)
	return err
}

// End writes nothing. A CSV has no place for a line that is not a record:
// a comment or a short last line breaks CSV readers (encoding/csv refuses a
// record of another width; spreadsheets and pandas take it for a row), and
// a whole fake row would be read as a result. A CSV's end is confirmed by
// the HTTP trailers and by its rows matching the batch's rows_total.
func (c *CSVRenderer) End(*bufio.Writer, int, string) error { return nil }

func appendInt(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }

// appendCSV appends a field, quoted when encoding/csv would quote it.
func appendCSV(b, field []byte) []byte {
	if !needsQuotes(field) {
		return append(b, field...)
	}
	b = append(b, '"')
	for {
		i := bytes.IndexByte(field, '"')
		if i < 0 {
			break
		}
		b = append(b, field[:i+1]...)
		b = append(b, '"')
		field = field[i+1:]
	}
	b = append(b, field...)
	return append(b, '"')
}

func needsQuotes(f []byte) bool {
	if len(f) == 0 {
		return false
	}
	if f[0] == ' ' || f[0] == '\t' || bytes.Equal(f, []byte(`\.`)) {
		return true
	}
	return bytes.ContainsAny(f, ",\"\r\n")
}

// JSONLRenderer writes one JSON object a line: {"row": N, "id": ..., the
// columns...}, or {"row": N, "id": ..., "error": {"code", "detail",
// "errors"}} for a row that was not scored. id, and warnings, are left out
// when empty.
type JSONLRenderer struct{ buf []byte }

// Header writes nothing: JSONL has no header.
func (j *JSONLRenderer) Header(*bufio.Writer, []Column) error { return nil }

// Row writes one line.
func (j *JSONLRenderer) Row(w *bufio.Writer, cols []Column, r *Result) error {
	b := append(j.buf[:0], `{"row":`...)
	b = appendInt(b, r.Row)
	if len(r.ID) > 0 {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, r.ID)
	}
	if r.Failed {
		b = append(b, `,"error":{"code":`...)
		b = appendJSONString(b, r.Code)
		b = append(b, `,"detail":`...)
		b = appendJSONString(b, r.Detail)
		if len(r.Fields) > 0 {
			b = append(b, `,"errors":`...)
			b = append(b, r.Fields...)
		}
		b = append(b, '}')
	} else {
		for i, col := range cols {
			if col.Type == ColWarnings && len(r.Values[i]) == 0 {
				continue
			}
			b = append(b, ',')
			b = appendJSONString(b, []byte(col.Name))
			b = append(b, ':')
			switch col.Type {
			case ColString:
				b = appendJSONString(b, r.Values[i])
			case ColList:
				b = append(b, '[')
				for k, item := range r.Lists[i] {
					if k > 0 {
						b = append(b, ',')
					}
					b = appendJSONString(b, item)
				}
				b = append(b, ']')
			default:
				if len(r.Values[i]) == 0 {
					b = append(b, "null"...)
				} else {
					b = append(b, r.Values[i]...)
				}
			}
		}
	}
	b = append(b, "}\n"...)
	j.buf = b
	_, err := w.Write(b)
	return err
}

// End writes the end marker, the last line of a JSONL stream that ended
// cleanly: {"end":true,"rows":N,"status":"..."}. It has no "row" key, so
// readers that take every line for a result can tell it apart.
func (j *JSONLRenderer) End(w *bufio.Writer, rows int, status string) error {
	b := append(j.buf[:0], `{"end":true,"rows":`...)
	b = appendInt(b, rows)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, []byte(status))
	b = append(b, "}\n"...)
	j.buf = b
	_, err := w.Write(b)
	return err
}

// appendJSONString appends s as a JSON string; plain ASCII, the common
// case, is copied without a trip through encoding/json.
func appendJSONString(b, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// RenderChunk writes one chunk's results with r, after the header when
// first is set, a step of p a row.
func RenderChunk(w *bufio.Writer, r Renderer, blob []byte, first bool, p *pace.Pacer) error {
	rr, err := NewResultReader(blob)
	if err != nil {
		return err
	}
	if first {
		if err := r.Header(w, rr.Cols); err != nil {
			return err
		}
	}
	for {
		res, err := rr.Next()
		if err != nil || res == nil {
			return err
		}
		if err := r.Row(w, rr.Cols, res); err != nil {
			return err
		}
		p.Step()
	}
}
